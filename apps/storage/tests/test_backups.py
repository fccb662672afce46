"""Backups on the filesystem: upload, latest, history, delete; checksums, tiers, quota, interruptions."""

from __future__ import annotations

import os

import pytest
from django.utils.http import http_date

from apps.billing.tiers import GIB
from apps.storage.backups import BackupHeaders, backup_upload, backups_abandoned_cleanup
from apps.storage.models import Backup, BackupStatus
from apps.storage.selectors import backup_latest

from .conftest import each_wrong_checksum, sha256_hex, stored_files

pytestmark = pytest.mark.django_db

URL = "/api/v1/backup"


def put_backup(client, data: bytes, *, version: int = 1, timestamp: int = 1_700_000_000, checksum: str | None = None):
    return client.generic(
        "PUT",
        URL,
        data,
        content_type="application/octet-stream",
        HTTP_X_BACKUP_VERSION=str(version),
        HTTP_X_BACKUP_TIMESTAMP=str(timestamp),
        HTTP_X_BACKUP_CHECKSUM=checksum or sha256_hex(data),
    )


def body_of(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_backup_round_trip_upload_latest_history_delete(pro_client, blob_dir, django_capture_on_commit_callbacks):
    # given two uploaded backups
    first = put_backup(pro_client, b"backup-one", version=1)
    second = put_backup(pro_client, b"backup-two", version=2)
    assert first.status_code == 201
    assert second.json()["ok"] is True
    assert second.json()["size_bytes"] == len(b"backup-two")

    # when the latest is fetched, then it is the second, streamed with its metadata
    latest = pro_client.get(URL)
    assert latest.status_code == 200
    assert body_of(latest) == b"backup-two"
    assert latest["X-Backup-Version"] == "2"
    assert latest["X-Checksum"] == sha256_hex(b"backup-two")
    assert latest["Last-Modified"]

    # when the history is listed, then both appear newest first, without blobs
    history = pro_client.get(f"{URL}/history").json()
    assert [h["version"] for h in history] == [2, 1]
    assert set(history[0]) == {"id", "version", "timestamp", "checksum", "size_bytes", "created_at", "chunk_count"}

    # when the latest is deleted, then the previous one is latest again and its blob is gone
    with django_capture_on_commit_callbacks(execute=True):
        assert pro_client.delete(f"{URL}/{second.json()['id']}").json() == {"ok": True}
    assert body_of(pro_client.get(URL)) == b"backup-one"
    assert len(stored_files(blob_dir)) == 1


@each_wrong_checksum
def test_checksum_mismatch_keeps_the_previous_latest_and_no_partial(pro_client, blob_dir, wrong_checksum):
    put_backup(pro_client, b"good backup")

    response = put_backup(pro_client, b"tampered", checksum=wrong_checksum(b"tampered"))

    assert response.status_code == 400
    assert response.json()["code"] == "checksum_mismatch"
    assert body_of(pro_client.get(URL)) == b"good backup"
    assert len(pro_client.get(f"{URL}/history").json()) == 1
    assert len(stored_files(blob_dir)) == 1  # the orphan blob was removed


def test_interrupted_stream_leaves_the_previous_latest(pro_user, pro_client, blob_dir):
    # given a complete backup
    put_backup(pro_client, b"previous")
    payload = os.urandom(3 * 1024 * 1024)
    chunks = iter([payload[: 1024 * 1024], payload[1024 * 1024 : 2 * 1024 * 1024]])

    def read(size: int) -> bytes:
        try:
            return next(chunks)
        except StopIteration:
            raise ConnectionResetError("client went away") from None

    # when an upload dies after 2 MiB of 3
    headers = BackupHeaders(version=9, timestamp=1, checksum=sha256_hex(payload))
    with pytest.raises(ConnectionResetError):
        backup_upload(user=pro_user, headers=headers, read=read, content_length=len(payload))

    # then the earlier backup is still latest and the partial blob is gone
    assert bytes(body_of(pro_client.get(URL))) == b"previous"
    assert backup_latest(user=pro_user).version == 1
    assert Backup.objects.get(version=9).status == BackupStatus.FAILED
    assert len(stored_files(blob_dir)) == 1


def test_body_larger_than_data_upload_max_memory_size_is_streamed(pro_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    payload = os.urandom(256 * 1024)

    response = put_backup(pro_client, payload)

    assert response.status_code == 201
    assert body_of(pro_client.get(URL)) == payload


def test_if_modified_since_answers_304(pro_client):
    put_backup(pro_client, b"data")
    last_modified = pro_client.get(URL)["Last-Modified"]

    unchanged = pro_client.get(URL, HTTP_IF_MODIFIED_SINCE=last_modified)
    older = pro_client.get(URL, HTTP_IF_MODIFIED_SINCE=http_date(1_000_000_000))

    assert unchanged.status_code == 304
    assert older.status_code == 200


def test_no_backup_yet_is_404(pro_client):
    response = pro_client.get(URL)

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_free_tier_cannot_upload_a_backup(auth_client, blob_dir):
    response = put_backup(auth_client, b"data")

    assert response.status_code == 403
    assert response.json()["code"] == "feature_not_available"
    assert response.json()["feature"] == "backup_gb"
    assert Backup.objects.count() == 0
    assert stored_files(blob_dir) == []


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_X_BACKUP_TIMESTAMP": "1", "HTTP_X_BACKUP_CHECKSUM": "0" * 64},
        {"HTTP_X_BACKUP_VERSION": "v1", "HTTP_X_BACKUP_TIMESTAMP": "1", "HTTP_X_BACKUP_CHECKSUM": "0" * 64},
        {"HTTP_X_BACKUP_VERSION": "1", "HTTP_X_BACKUP_TIMESTAMP": "-5", "HTTP_X_BACKUP_CHECKSUM": "0" * 64},
        {"HTTP_X_BACKUP_VERSION": "1", "HTTP_X_BACKUP_TIMESTAMP": "1", "HTTP_X_BACKUP_CHECKSUM": "abc"},
        {"HTTP_X_BACKUP_VERSION": "1", "HTTP_X_BACKUP_TIMESTAMP": "1"},
        # digits to str.isdigit() that int() refuses (the header byte 0xB2 reads as a superscript two)
        {"HTTP_X_BACKUP_VERSION": "\u00b2", "HTTP_X_BACKUP_TIMESTAMP": "1", "HTTP_X_BACKUP_CHECKSUM": "0" * 64},
        {"HTTP_X_BACKUP_VERSION": "1", "HTTP_X_BACKUP_TIMESTAMP": "1\u00b9", "HTTP_X_BACKUP_CHECKSUM": "0" * 64},
    ],
)
def test_malformed_backup_headers_are_400(pro_client, blob_dir, headers):
    response = pro_client.generic("PUT", URL, b"data", content_type="application/octet-stream", **headers)

    assert response.status_code == 400
    assert response.json()["code"] in {"invalid_backup_header", "invalid_checksum"}
    assert Backup.objects.count() == 0
    assert stored_files(blob_dir) == []


def test_empty_backup_is_400(pro_client, blob_dir):
    response = put_backup(pro_client, b"")

    assert response.status_code == 400
    assert response.json()["code"] == "empty_backup"
    assert stored_files(blob_dir) == []


def test_backup_quota_is_checked_before_reading_the_body(pro_client, pro_user, blob_dir):
    Backup.objects.create(
        user=pro_user,
        version=1,
        timestamp=1,
        checksum="0" * 64,
        size_bytes=5 * GIB - 3,
        blob_key="backups/x/old",
        status=BackupStatus.COMPLETE,
    )

    response = put_backup(pro_client, b"four")

    assert response.status_code == 413
    assert response.json()["code"] == "quota_exceeded"
    assert response.json()["feature"] == "backup_gb"
    assert stored_files(blob_dir) == []


def test_a_chunked_upload_without_length_stops_at_the_quota(pro_user, blob_dir):
    Backup.objects.create(
        user=pro_user,
        version=1,
        timestamp=1,
        checksum="0" * 64,
        size_bytes=5 * GIB - 100,
        blob_key="backups/x/old",
        status=BackupStatus.COMPLETE,
    )
    chunks = iter([b"a" * 64, b"b" * 64, b"c" * 64])
    headers = BackupHeaders(version=2, timestamp=2, checksum="0" * 64)

    from apps.core.errors import ApplicationError

    with pytest.raises(ApplicationError) as error:
        backup_upload(user=pro_user, headers=headers, read=lambda size: next(chunks, b""), content_length=None)

    assert error.value.code == "quota_exceeded"
    assert stored_files(blob_dir) == []
    assert backup_latest(user=pro_user).version == 1


def test_another_users_backup_is_404(pro_client, other_client):
    backup_id = put_backup(pro_client, b"mine").json()["id"]

    response = other_client.delete(f"{URL}/{backup_id}")

    assert response.status_code == 404
    assert other_client.get(URL).status_code == 404
    assert other_client.get(f"{URL}/history").json() == []
    assert body_of(pro_client.get(URL)) == b"mine"


def test_multipart_needs_s3(pro_client):
    response = pro_client.post(
        f"{URL}/multipart", {"version": 1, "timestamp": 1, "checksum": "0" * 64, "size_bytes": 10}
    )

    assert response.status_code == 400
    assert response.json()["code"] == "multipart_unavailable"


def test_abandoned_streamed_upload_is_cleaned_up(pro_user, blob_dir):
    from datetime import timedelta

    from django.utils import timezone

    from apps.storage.blob_store import blob_write_bytes

    blob_write_bytes(key="backups/x/stale", data=b"half")
    stale = Backup.objects.create(
        user=pro_user, version=1, timestamp=1, checksum="0" * 64, size_bytes=10, blob_key="backups/x/stale"
    )
    Backup.objects.filter(id=stale.id).update(created_at=timezone.now() - timedelta(days=2))

    assert backups_abandoned_cleanup() == 1

    stale.refresh_from_db()
    assert stale.status == BackupStatus.FAILED
    assert stored_files(blob_dir) == []
