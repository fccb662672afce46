"""Grants after connecting: refresh (rotation, one at a time), refusal → needs_reconnect, list,
disconnect, and the staff admin."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import close_old_connections
from django.test import Client
from django.utils import timezone

from apps.accounts.models import Tier
from apps.accounts.testing import client_for
from apps.connectors.error_codes import ConnectorErrorCode
from apps.connectors.errors import ConnectorError
from apps.connectors.grants import grant_access_token, grant_tokens
from apps.connectors.models import GrantStatus, OAuthGrant
from apps.connectors.token_endpoint import TokenSet
from apps.core.models import AuditEvent

pytestmark = pytest.mark.django_db


def _expire(grant: OAuthGrant) -> None:
    """Make the stored access token look expired (the provider's clock moved on)."""
    from apps.accounts.keys import encrypt_for_user

    tokens = grant_tokens(grant=grant)._replace(expires_at=timezone.now() - timedelta(seconds=5))
    OAuthGrant.objects.filter(pk=grant.pk).update(
        token_ciphertext=encrypt_for_user(user_id=grant.user_id, plaintext=TokenSet.to_json(tokens))
    )
    grant.refresh_from_db()


def test_refresh_endpoint_rotates_and_persists_the_refresh_token(user, connect, fake):
    # given a connected grant
    grant = connect(user, "gmail")
    old = grant_tokens(grant=grant)

    # when the client asks for a refresh
    response = client_for(user).post("/api/v1/oauth/gmail/refresh")

    # then a new token set is stored: the rotated refresh token is the one the provider now knows
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["ok"] is True
    assert body["provider"] == "gmail"
    assert body["status"] == "active"
    assert body["access_expires_at"]
    grant.refresh_from_db()
    new = grant_tokens(grant=grant)
    assert new.refresh_token != old.refresh_token
    assert new.refresh_token == fake.state.grants[-1].refresh_token
    assert new.access_token not in response.content.decode()
    assert fake.requests_to("/google/token")[-1]["form"]["grant_type"] == "refresh_token"


def test_a_provider_that_does_not_rotate_keeps_the_old_refresh_token(user, connect, fake):
    grant = connect(user, "outlook")
    old = grant_tokens(grant=grant)
    fake.rotate_refresh_tokens = False

    assert client_for(user).post("/api/v1/oauth/outlook/refresh").status_code == 200

    grant.refresh_from_db()
    assert grant_tokens(grant=grant).refresh_token == old.refresh_token
    assert grant_tokens(grant=grant).access_token != old.access_token


def test_a_valid_token_is_returned_without_calling_the_provider(user, connect, fake):
    grant = connect(user, "gmail")
    calls = fake.count("POST", "/google/token")

    token = grant_access_token(grant=grant)

    assert token == grant_tokens(grant=grant).access_token
    assert fake.count("POST", "/google/token") == calls


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_refreshes_call_the_token_endpoint_once(make_user, connect, fake) -> None:
    # given an expired grant and a token endpoint slow enough for two workers to overlap
    grant = connect(make_user("alice@example.com"), "gmail")
    _expire(grant)
    calls_before = fake.count("POST", "/google/token")
    fake.token_delay = 0.5
    barrier = threading.Barrier(2)
    tokens: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            own = OAuthGrant.objects.get(pk=grant.pk)  # each worker loads the row itself
            barrier.wait(timeout=10)
            tokens.append(grant_access_token(grant=own))
        except BaseException as exc:
            errors.append(exc)
        finally:
            close_old_connections()

    # when two workers ask for a token at once
    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    # then the provider saw one refresh and both got the same fresh token
    assert errors == []
    assert fake.count("POST", "/google/token") - calls_before == 1
    assert len(set(tokens)) == 1
    grant.refresh_from_db()
    assert tokens[0] == grant_tokens(grant=grant).access_token


def test_a_refused_refresh_marks_the_grant_needs_reconnect(user, connect, fake, make_user):
    # given a connected grant whose refresh token the provider has revoked
    grant = connect(user, "gmail")
    fake.refresh_error = "invalid_grant"

    # when a refresh is attempted
    response = client_for(user).post("/api/v1/oauth/gmail/refresh")

    # then the caller learns it must reconnect, and the grant says so everywhere
    assert response.status_code == 409
    assert response.json()["code"] == "grant_needs_reconnect"
    listed = client_for(user).get("/api/v1/oauth/grants").json()
    assert listed[0]["status"] == "needs_reconnect"
    assert "invalid_grant" in listed[0]["status_reason"]
    assert AuditEvent.objects.filter(action="grant.needs_reconnect", target_id=str(grant.id)).exists()
    with pytest.raises(ConnectorError) as raised:
        grant_access_token(grant=OAuthGrant.objects.get(pk=grant.pk))
    assert raised.value.code == ConnectorErrorCode.GRANT_NEEDS_RECONNECT
    # and staff see it in the admin
    staff = make_user("staff@example.com", is_staff=True, is_superuser=True)
    browser = Client()
    browser.force_login(staff)
    page = browser.get("/admin/connectors/oauthgrant/?status__exact=needs_reconnect")
    assert page.status_code == 200
    assert b"Needs reconnect" in page.content
    assert b"alice@example.com" in page.content


def test_an_expired_token_is_refreshed_on_demand(user, connect, fake):
    grant = connect(user, "teams")
    _expire(grant)

    token = grant_access_token(grant=grant)

    assert token in fake.state.valid_access
    grant.refresh_from_db()
    assert grant.access_expires_at > timezone.now() + timedelta(minutes=30)
    assert grant.last_refreshed_at is not None


def test_grants_list_shows_only_the_callers_grants_and_never_tokens(user, make_user, connect):
    # given alice and bob each with a grant
    bob = make_user("bob@example.com")
    alice_grant = connect(user, "gmail")
    connect(bob, "outlook")

    # when alice lists her grants
    response = client_for(user).get("/api/v1/oauth/grants")

    # then she sees hers alone, with status and scopes but no token material
    grants = response.json()
    assert [g["provider"] for g in grants] == ["gmail"]
    assert grants[0]["id"] == str(alice_grant.id)
    assert set(grants[0]) == {
        "id",
        "provider",
        "status",
        "status_reason",
        "scopes",
        "access_expires_at",
        "last_refreshed_at",
        "created_at",
        "updated_at",
    }
    assert "https://www.googleapis.com/auth/gmail.readonly" in grants[0]["scopes"]
    assert grant_tokens(grant=alice_grant).access_token not in response.content.decode()


def test_another_users_grant_is_never_reachable(user, make_user, connect):
    bob = make_user("bob@example.com")
    connect(bob, "gmail")

    refresh = client_for(user).post("/api/v1/oauth/gmail/refresh")
    delete = client_for(user).delete("/api/v1/oauth/gmail")

    assert refresh.status_code == 404
    assert delete.status_code == 404
    assert {refresh.json()["code"], delete.json()["code"]} == {"grant_missing"}
    assert OAuthGrant.objects.get(user=bob).status == GrantStatus.ACTIVE


def test_disconnect_revokes_erases_tokens_audits_and_frees_the_slot(
    user, connect, fake, django_capture_on_commit_callbacks
):
    # given a free user with gmail connected
    grant = connect(user, "gmail")
    refresh_token = grant_tokens(grant=grant).refresh_token
    client = client_for(user)

    # when they disconnect it
    with django_capture_on_commit_callbacks(execute=True):
        response = client.delete("/api/v1/oauth/gmail")

    # then the grant is revoked with its tokens erased, audited, and another provider may be connected
    assert response.status_code == 200
    assert response.json() == {"ok": True, "provider": "gmail", "status": "revoked"}
    grant.refresh_from_db()
    assert grant.status == GrantStatus.REVOKED
    assert bytes(grant.token_ciphertext) == b""
    assert AuditEvent.objects.filter(action="grant.revoked", target_id=str(grant.id), actor=user).exists()
    assert fake.requests_to("/google/revoke")[-1]["form"] == {"token": refresh_token}
    assert all(g.refresh_token != refresh_token for g in fake.state.grants)  # Google forgot it too
    assert client.get("/api/v1/oauth/outlook/authorize").status_code == 200
    assert client.delete("/api/v1/oauth/gmail").status_code == 404
    assert client.post("/api/v1/oauth/gmail/refresh").json()["code"] == "grant_missing"


def test_admin_shows_grants_without_ciphertext_and_marks_needs_reconnect(user, make_user, connect):
    # given a grant and a staff member
    grant = connect(user, "gmail")
    staff = make_user("staff@example.com", is_staff=True, is_superuser=True)
    browser = Client()
    browser.force_login(staff)
    ciphertext = bytes(grant.token_ciphertext)

    # when staff open the list and the grant, then use the action
    listing = browser.get("/admin/connectors/oauthgrant/?provider__exact=gmail")
    detail = browser.get(f"/admin/connectors/oauthgrant/{grant.id}/change/")
    action = browser.post(
        "/admin/connectors/oauthgrant/", {"action": "mark_needs_reconnect", "_selected_action": [str(grant.id)]}
    )

    # then pages render without any token material, and the grant is flagged and audited
    assert listing.status_code == 200
    assert detail.status_code == 200
    for page in (listing, detail):
        assert ciphertext.decode() not in page.content.decode()
        assert b"token_ciphertext" not in page.content
    assert action.status_code == 302
    grant.refresh_from_db()
    assert grant.status == GrantStatus.NEEDS_RECONNECT
    assert AuditEvent.objects.filter(action="grant.needs_reconnect", actor=staff).exists()


def test_pro_user_reconnecting_after_needs_reconnect_is_active_again(make_user, connect, fake):
    pro = make_user("pro@example.com", tier=Tier.PRO)
    grant = connect(pro, "gmail")
    fake.refresh_error = "invalid_grant"
    client_for(pro).post("/api/v1/oauth/gmail/refresh")
    fake.refresh_error = None

    connect(pro, "gmail")

    grant.refresh_from_db()
    assert grant.status == GrantStatus.ACTIVE
    assert grant.status_reason == ""
    assert OAuthGrant.objects.filter(user=pro).count() == 1


def test_disconnect_succeeds_when_the_provider_cannot_revoke(user, connect, fake, django_capture_on_commit_callbacks):
    connect(user, "gmail")
    fake.fail("/google/revoke", [(503, {}, {})])

    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(user).delete("/api/v1/oauth/gmail")

    assert response.status_code == 200
    assert OAuthGrant.objects.get(user=user).status == GrantStatus.REVOKED
