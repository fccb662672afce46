"""The same storage on S3 (a moto server on loopback): records, backups, presigned downloads and multipart."""

from __future__ import annotations

import os
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone

from apps.accounts.testing import client_for
from apps.storage.blob_store import s3_bucket_name
from apps.storage.models import Backup, BackupStatus
from apps.storage.multipart import backup_verify
from apps.storage.tasks import abort_stale_uploads_task

from .conftest import b64, each_wrong_checksum, s3_keys, sha256_hex
from .test_backups import body_of, put_backup

pytestmark = pytest.mark.django_db

RECORDS = "/api/v1/storage/records"
BACKUP = "/api/v1/backup"


def test_records_live_in_the_bucket_and_leave_it(pro_client, s3, django_capture_on_commit_callbacks):
    created = pro_client.post(RECORDS, {"table": "notes", "blob": b64(b"cipher"), "checksum": sha256_hex(b"cipher")})
    record_id = created.json()["id"]

    [key] = s3_keys(s3)
    head = s3.head_object(Bucket=s3.bucket, Key=key)
    assert head["ServerSideEncryption"] == "AES256"
    assert pro_client.get(f"{RECORDS}/{record_id}").content == b"cipher"

    with django_capture_on_commit_callbacks(execute=True):
        pro_client.delete(f"{RECORDS}/{record_id}")
    assert s3_keys(s3) == []


def test_backup_streams_to_s3_and_large_downloads_are_presigned(pro_client, s3, settings):
    payload = os.urandom(3 * 1024 * 1024)
    assert put_backup(pro_client, payload).status_code == 201
    assert len(s3_keys(s3)) == 1

    # small enough: streamed through the app
    settings.BACKUP_PRESIGNED_DOWNLOAD_MIN_BYTES = 10 * 1024 * 1024
    assert body_of(pro_client.get(BACKUP)) == payload

    # large: a redirect to a presigned URL that S3 answers with the bytes
    settings.BACKUP_PRESIGNED_DOWNLOAD_MIN_BYTES = 1024
    redirect = pro_client.get(BACKUP)
    assert redirect.status_code == 302
    assert redirect["X-Checksum"] == sha256_hex(payload)
    assert httpx.get(redirect["Location"]).content == payload

    as_json = pro_client.get(BACKUP, HTTP_ACCEPT="application/json").json()
    assert httpx.get(as_json["download_url"]).content == payload


@each_wrong_checksum
def test_checksum_mismatch_on_s3_leaves_no_object(pro_client, s3, wrong_checksum):
    put_backup(pro_client, b"kept")

    response = put_backup(pro_client, b"bad", checksum=wrong_checksum(b"bad"))

    assert response.status_code == 400
    assert len(s3_keys(s3)) == 1
    assert body_of(pro_client.get(BACKUP)) == b"kept"


def _multipart_upload(client, payload: bytes, *, checksum: str | None = None) -> str:
    initiated = client.post(
        f"{BACKUP}/multipart",
        {"version": 7, "timestamp": 123, "checksum": checksum or sha256_hex(payload), "size_bytes": len(payload)},
    )
    assert initiated.status_code == 201, initiated.json()
    backup_id, part_size, part_count = (initiated.json()[k] for k in ("id", "part_size", "part_count"))
    urls = client.post(f"{BACKUP}/multipart/{backup_id}/parts", {"part_numbers": list(range(1, part_count + 1))})
    parts = []
    for entry in urls.json()["urls"]:
        number = entry["part_number"]
        chunk = payload[(number - 1) * part_size : number * part_size]
        uploaded = httpx.put(entry["url"], content=chunk)
        assert uploaded.status_code == 200
        parts.append({"part_number": number, "etag": uploaded.headers["ETag"]})
    completed = client.post(f"{BACKUP}/multipart/{backup_id}/complete", {"parts": parts})
    assert completed.status_code == 202, completed.json()
    assert completed.json()["status"] == "verifying"
    return backup_id


def test_presigned_multipart_becomes_latest_once_verified(pro_client, s3, settings):
    settings.BACKUP_PRESIGNED_DOWNLOAD_MIN_BYTES = 64 * 1024 * 1024  # stream it back through the app
    # given a backup uploaded straight to S3 in two parts
    payload = os.urandom(9 * 1024 * 1024)
    backup_id = _multipart_upload(pro_client, payload)

    # then it is not latest before the worker has verified it
    assert pro_client.get(BACKUP).status_code == 404

    # when the verification task runs
    backup_verify(backup_id=backup_id)

    # then it is the latest, byte for byte
    history = pro_client.get(f"{BACKUP}/history").json()
    assert [(h["id"], h["version"], h["size_bytes"]) for h in history] == [(backup_id, 7, len(payload))]
    assert history[0]["chunk_count"] == 2  # the parts it was uploaded in
    assert body_of(pro_client.get(BACKUP, HTTP_ACCEPT="application/octet-stream")) == payload


@each_wrong_checksum
def test_multipart_with_a_wrong_checksum_is_discarded(pro_client, s3, wrong_checksum):
    put_backup(pro_client, b"previous")
    payload = os.urandom(1024)
    backup_id = _multipart_upload(pro_client, payload, checksum=wrong_checksum(payload))

    backup_verify(backup_id=backup_id)

    assert Backup.objects.get(id=backup_id).status == BackupStatus.FAILED
    assert body_of(pro_client.get(BACKUP)) == b"previous"
    assert len(s3_keys(s3)) == 1


def test_multipart_of_another_user_is_404(pro_client, other_client, s3):
    initiated = pro_client.post(
        f"{BACKUP}/multipart", {"version": 1, "timestamp": 1, "checksum": "0" * 64, "size_bytes": 10}
    )
    backup_id = initiated.json()["id"]

    parts = other_client.post(f"{BACKUP}/multipart/{backup_id}/parts", {"part_numbers": [1]})
    complete = other_client.post(
        f"{BACKUP}/multipart/{backup_id}/complete", {"parts": [{"part_number": 1, "etag": "x"}]}
    )

    assert (parts.status_code, complete.status_code) == (404, 404)


def test_out_of_range_part_numbers_are_400(pro_client, s3):
    initiated = pro_client.post(
        f"{BACKUP}/multipart", {"version": 1, "timestamp": 1, "checksum": "0" * 64, "size_bytes": 10}
    )

    response = pro_client.post(f"{BACKUP}/multipart/{initiated.json()['id']}/parts", {"part_numbers": [2]})

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_parts"


def test_stale_multipart_uploads_are_aborted(pro_client, s3):
    initiated = pro_client.post(
        f"{BACKUP}/multipart", {"version": 1, "timestamp": 1, "checksum": "0" * 64, "size_bytes": 10}
    )
    backup_id = initiated.json()["id"]
    assert len(s3.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", [])) == 1
    Backup.objects.filter(id=backup_id).update(created_at=timezone.now() - timedelta(days=2))

    assert abort_stale_uploads_task() == 1

    assert s3.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", []) == []
    assert Backup.objects.get(id=backup_id).status == BackupStatus.FAILED


def test_free_tier_cannot_start_a_multipart_upload(auth_client, s3):
    response = auth_client.post(
        f"{BACKUP}/multipart", {"version": 1, "timestamp": 1, "checksum": "0" * 64, "size_bytes": 10}
    )

    assert response.status_code == 403
    assert s3.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", []) == []


def test_deleting_an_open_multipart_upload_aborts_it(pro_client, s3, django_capture_on_commit_callbacks):
    initiated = pro_client.post(
        f"{BACKUP}/multipart", {"version": 1, "timestamp": 1, "checksum": "0" * 64, "size_bytes": 10}
    )

    with django_capture_on_commit_callbacks(execute=True):
        response = pro_client.delete(f"{BACKUP}/{initiated.json()['id']}")

    assert response.status_code == 200
    assert s3.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", []) == []
    assert not Backup.objects.filter(id=initiated.json()["id"]).exists()


def test_completing_a_multipart_upload_queues_its_verification(
    pro_client, s3, settings, celery_eager, django_capture_on_commit_callbacks
):
    settings.BACKUP_PRESIGNED_DOWNLOAD_MIN_BYTES = 64 * 1024 * 1024
    payload = os.urandom(2048)

    # when a multipart upload completes and its transaction commits
    with django_capture_on_commit_callbacks(execute=True):
        backup_id = _multipart_upload(pro_client, payload)

    # then the queued verification has run: the backup is verified and latest
    assert Backup.objects.get(id=backup_id).status == BackupStatus.COMPLETE
    assert body_of(pro_client.get(BACKUP)) == payload


def test_a_lost_verification_is_queued_again_by_the_sweeper(pro_client, s3, settings, celery_eager):
    # given a completed multipart upload whose verification task never ran
    settings.BACKUP_PRESIGNED_DOWNLOAD_MIN_BYTES = 64 * 1024 * 1024
    payload = os.urandom(2048)
    backup_id = _multipart_upload(pro_client, payload)
    Backup.objects.filter(id=backup_id).update(updated_at=timezone.now() - timedelta(days=2))

    # when the periodic sweeper runs (tasks executed in-process)
    abort_stale_uploads_task()

    # then the backup is verified and becomes latest
    assert Backup.objects.get(id=backup_id).status == BackupStatus.COMPLETE
    assert body_of(pro_client.get(BACKUP)) == payload


@pytest.mark.parametrize(
    "body",
    [
        {"size_bytes": 2**63},
        {"size_bytes": 10**400},
        {"version": 2**63},
        {"timestamp": 10**400},
    ],
    ids=["size-beyond-bigint", "size-400-digits", "version-beyond-bigint", "timestamp-400-digits"],
)
def test_a_multipart_number_no_bigint_column_holds_is_a_400(make_user, s3, body):
    # given a team user, whose backup quota is unlimited (so no quota check stops a huge size first)
    client = client_for(make_user("team@example.com", tier="team"))
    # when a multipart backup is initiated with a number beyond PostgreSQL's bigint
    response = client.post(
        f"{BACKUP}/multipart", {"version": 1, "timestamp": 1, "checksum": "0" * 64, "size_bytes": 10, **body}
    )
    # then it is a stable 400 naming the field, nothing is reserved and no upload is left open on S3
    assert response.status_code == 400
    assert response.json()["code"] in {"validation_error", "invalid_backup_header"}
    assert Backup.objects.count() == 0
    assert s3.list_multipart_uploads(Bucket=s3_bucket_name()).get("Uploads", []) == []


@pytest.mark.parametrize("number", [10_001, 2**31, 10**400])
def test_a_part_number_beyond_s3s_ten_thousand_is_a_400(pro_client, s3, number):
    initiated = pro_client.post(
        f"{BACKUP}/multipart", {"version": 1, "timestamp": 1, "checksum": "0" * 64, "size_bytes": 10}
    )
    url = f"{BACKUP}/multipart/{initiated.json()['id']}"

    parts = pro_client.post(f"{url}/parts", {"part_numbers": [number]})
    complete = pro_client.post(f"{url}/complete", {"parts": [{"part_number": number, "etag": "x"}]})

    assert (parts.status_code, complete.status_code) == (400, 400)
    assert parts.json()["code"] in {"validation_error", "invalid_parts"}
    assert complete.json()["code"] in {"validation_error", "invalid_parts"}
