"""Session revocations and master-key rotations leave audit rows."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from apps.accounts.models import TokenFamily
from apps.accounts.tokens import tokens_issue, tokens_refresh
from apps.core.audit import AuditAction
from apps.core.errors import ApplicationError
from apps.core.models import AuditEvent

pytestmark = pytest.mark.django_db


def _revocations():
    return list(AuditEvent.objects.filter(action=AuditAction.SESSION_REVOKED).order_by("created_at"))


def test_logout_is_audited_with_the_user_as_actor(user, auth_client):
    response = auth_client.post("/api/v1/auth/logout", {}, format="json")

    assert response.status_code == 204
    [row] = _revocations()
    assert (row.actor_id, row.subject_user_id, row.data["reason"]) == (user.pk, user.pk, "logout")
    assert row.target_type == "accounts.tokenfamily"


def test_refresh_token_reuse_revocation_is_audited_without_actor(user):
    pair = tokens_issue(user=user)
    tokens_refresh(refresh_token=pair.refresh_token)

    with pytest.raises(ApplicationError):
        tokens_refresh(refresh_token=pair.refresh_token)

    [row] = _revocations()
    assert row.actor is None
    assert (row.subject_user_id, row.data["reason"]) == (user.pk, "refresh_reuse")


def test_admin_revoke_action_is_audited_with_the_staff_member(client, make_user, user):
    # given two sessions of a user and a staff member in the admin
    tokens_issue(user=user)
    tokens_issue(user=user)
    staff = make_user("staff@example.com", is_staff=True, is_superuser=True)
    client.force_login(staff)
    ids = [str(pk) for pk in TokenFamily.objects.filter(user=user).values_list("pk", flat=True)]

    # when the staff member revokes them
    response = client.post("/admin/accounts/tokenfamily/", {"action": "revoke", "_selected_action": ids}, follow=True)

    # then both are revoked, one audit row each naming the staff member
    assert response.status_code == 200
    assert TokenFamily.objects.filter(user=user, revoked_at__isnull=True).count() == 0
    rows = _revocations()
    assert len(rows) == 2
    assert {row.actor_id for row in rows} == {staff.pk}
    assert {row.data["reason"] for row in rows} == {"staff"}


def test_master_key_rotation_is_audited(user):
    call_command("rotate_master_keys", stdout=io.StringIO())

    [row] = AuditEvent.objects.filter(action=AuditAction.MASTER_KEYS_ROTATED)
    assert row.actor is None
    assert row.data["rewrapped_user_keys"] >= 1
