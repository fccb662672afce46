"""Storage over the new quota after a downgrade turns read-only: reads and deletes work, writes get
the quota error, nothing is deleted; the change is audited both ways."""

from __future__ import annotations

import pytest

from apps.accounts.models import User
from apps.billing.tiers import GIB
from apps.core.audit import AuditAction
from apps.core.models import AuditEvent
from apps.storage.models import StorageRecord
from apps.storage.tier_limits import storage_tier_changed
from apps.teams.seats import team_seats_grant
from apps.teams.services import team_create

from .conftest import b64, client_for, sha256_hex

pytestmark = pytest.mark.django_db

URL = "/api/v1/storage/records"


def _create(client, data: bytes):
    return client.post(URL, {"table": "notes", "blob": b64(data), "checksum": sha256_hex(data)})


def test_a_downgrade_makes_storage_read_only_and_the_plan_coming_back_writable(
    make_user, blob_dir, django_capture_on_commit_callbacks
):
    # given a team member (unlimited storage) with two records
    owner = make_user(email_verified=True)
    team = team_create(user=owner, name="Agency")
    with django_capture_on_commit_callbacks(execute=True):
        team_seats_grant(team=team, seats=1, until=None, actor=None)
    client = client_for(owner)
    with django_capture_on_commit_callbacks(execute=True):
        first = _create(client, b"ciphertext-1").json()["id"]
        _create(client, b"ciphertext-2")

    # when the plan falls to free (0 GB of cloud storage)
    with django_capture_on_commit_callbacks(execute=True):
        team_seats_grant(team=team, seats=0, until=None, actor=None)

    # then writes get the usual gate answer (free has no cloud storage), reads and deletes work,
    # nothing was deleted
    refused = _create(client, b"ciphertext-3")
    assert refused.status_code == 403
    assert refused.json()["code"] == "feature_not_available"
    assert client.get(URL).status_code == 200
    assert client.get(f"{URL}/{first}").status_code == 200
    assert StorageRecord.objects.filter(user=owner).count() == 2
    with django_capture_on_commit_callbacks(execute=True):
        assert client.delete(f"{URL}/{first}").status_code in (200, 204)
    read_only = AuditEvent.objects.get(action=AuditAction.STORAGE_READ_ONLY)
    assert read_only.subject_user_id == owner.pk
    assert read_only.data["feature"] == "cloud_storage_gb"

    # when the plan comes back
    with django_capture_on_commit_callbacks(execute=True):
        team_seats_grant(team=team, seats=1, until=None, actor=None)

    # then writes work again, and that is audited too
    assert _create(client, b"ciphertext-4").status_code == 201
    assert AuditEvent.objects.filter(action=AuditAction.STORAGE_WRITABLE).count() == 1


def test_over_a_smaller_quota_writes_get_the_quota_error_and_deletes_work(make_user, blob_dir):
    # given a pro user (5 GB) whose records count 6 GiB, as after a fall from the team plan
    user = make_user(email_verified=True)
    client = client_for(user)
    User.objects.filter(pk=user.pk).update(tier="team")
    record_id = _create(client, b"ciphertext-1").json()["id"]
    StorageRecord.objects.filter(pk=record_id).update(size_bytes=6 * GIB)
    User.objects.filter(pk=user.pk).update(tier="pro")

    # when the tier change is received
    changed = storage_tier_changed(user_id=user.pk, previous="team", tier="pro")

    # then the storage is read-only: audited, writes refused with the quota error, reads and deletes work
    assert changed == ["cloud_storage_gb"]
    assert AuditEvent.objects.get(action=AuditAction.STORAGE_READ_ONLY).data["limit_bytes"] == 5 * GIB
    refused = _create(client, b"ciphertext-2")
    assert refused.status_code == 403
    assert refused.json()["code"] == "quota_exceeded"
    assert client.get(f"{URL}/{record_id}").status_code == 200
    assert client.delete(f"{URL}/{record_id}").status_code in (200, 204)
    assert _create(client, b"ciphertext-3").status_code == 201
