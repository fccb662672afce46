"""Backups: the lifecycle every upload path shares, and the streamed upload.

A backup row is reserved (``uploading``, quota checked against the declared size) before any
byte is stored, its bytes go under a fresh key, and it becomes the user's latest only in
``backup_complete``, under the user's backup lock, after the size and SHA-256 are verified. Any
failure marks the row failed and deletes its bytes: the previous latest is never touched and a
partial backup is never visible. The streamed PUT (``backup_upload``, or the ASGI route in
``backup_stream.py``) and the presigned multipart flow (``multipart.py``) both use it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.billing.tiers import Feature, quota_bytes, require_feature
from apps.core.errors import ApplicationError, NotFoundError

from .blob_store import HashingReader, LimitExceeded, blob_delete, blob_new_key, blob_write_stream, s3_multipart_abort
from .checksums import checksum_matches, checksum_normalize
from .error_codes import StorageErrorCode
from .lock_objects import user_quota_lock
from .models import Backup, BackupStatus
from .quotas import quota_exceeded_error
from .selectors import backup_used_bytes

logger = logging.getLogger(__name__)

# A backup body that does not fit the remaining quota is "Payload Too Large" (the multipart flow,
# whose initiate request carries no body, answers 403 like every other quota check).
BODY_OVER_QUOTA = 413

# Celery task name (tasks.py registers it): queued by name, so the services never import the doors.
BACKUP_VERIFY_TASK = "storage.backup_verify"


@dataclass(frozen=True)
class BackupHeaders:
    version: int
    timestamp: int
    checksum: str


def backup_headers_parse(*, version: str | None, timestamp: str | None, checksum: str | None) -> BackupHeaders:
    def integer(value: str | None, header: str) -> int:
        # ASCII only: str.isdigit() also accepts digits int() refuses, such as a superscript two.
        if value is None or not (value.strip().isascii() and value.strip().isdigit()) or len(value.strip()) > 18:
            raise ApplicationError(
                StorageErrorCode.INVALID_BACKUP_HEADER,
                f"Header {header} is required and must be a non-negative integer.",
                fields={header: ["Required non-negative integer."]},
            )
        return int(value)

    parsed_version = integer(version, "X-Backup-Version")
    parsed_timestamp = integer(timestamp, "X-Backup-Timestamp")
    if checksum is None:
        raise ApplicationError(
            StorageErrorCode.INVALID_BACKUP_HEADER,
            "Header X-Backup-Checksum is required (hex SHA-256 of the body).",
            fields={"X-Backup-Checksum": ["Required."]},
        )
    return BackupHeaders(
        version=parsed_version,
        timestamp=parsed_timestamp,
        checksum=checksum_normalize(checksum.strip(), field="X-Backup-Checksum"),
    )


def backup_body_room_check(*, user: Any, declared_size: int | None, over_quota_status: int = BODY_OVER_QUOTA) -> None:
    """Tier gate and quota against a declared size, before any byte is read (re-checked under lock later)."""
    require_feature(user, Feature.BACKUP_GB)
    limit = quota_bytes(user, Feature.BACKUP_GB)
    if limit is not None:
        used = backup_used_bytes(user=user)
        if used + (declared_size or 0) > limit:
            raise quota_exceeded_error(
                feature=Feature.BACKUP_GB,
                limit=limit,
                used=used,
                incoming=declared_size or 0,
                status=over_quota_status,
            )


def backup_room(*, user: Any) -> int | None:
    """Bytes of backup quota the user has left (None: unlimited)."""
    limit = quota_bytes(user, Feature.BACKUP_GB)
    return None if limit is None else max(0, limit - backup_used_bytes(user=user))


def backup_reserve(
    *,
    user: Any,
    headers: BackupHeaders,
    declared_size: int | None,
    key: str,
    over_quota_status: int = BODY_OVER_QUOTA,
    **extra: Any,
) -> Backup:
    """Check the backup quota and create the in-flight row that reserves ``declared_size`` bytes."""
    require_feature(user, Feature.BACKUP_GB)
    with transaction.atomic():
        user_quota_lock(user_id=user.id, scope="backup")
        backup_body_room_check(user=user, declared_size=declared_size, over_quota_status=over_quota_status)
        return Backup.objects.create(
            user=user,
            version=headers.version,
            timestamp=headers.timestamp,
            checksum=headers.checksum,
            size_bytes=declared_size or 0,
            blob_key=key,
            status=BackupStatus.UPLOADING,
            **extra,
        )


def backup_room_left(*, user: Any, backup: Backup) -> int | None:
    limit = quota_bytes(user, Feature.BACKUP_GB)
    if limit is None:
        return None
    others = backup_used_bytes(user=user) - backup.size_bytes
    return max(0, limit - others)


def backup_fail(*, backup: Backup) -> None:
    """Mark a backup failed and remove its bytes; the previous latest is untouched."""
    Backup.objects.filter(id=backup.id).update(status=BackupStatus.FAILED, size_bytes=0, updated_at=timezone.now())
    blob_delete(key=backup.blob_key)


def backup_complete(*, user: Any, backup_id: Any, size: int) -> Backup:
    """Under the user's backup lock: re-check the quota with the real size, then become latest."""
    with transaction.atomic():
        user_quota_lock(user_id=user.id, scope="backup")
        backup = Backup.objects.select_for_update().get(id=backup_id)
        if backup.status not in (BackupStatus.UPLOADING, BackupStatus.VERIFYING):
            raise ApplicationError(
                StorageErrorCode.MULTIPART_NOT_OPEN, "This backup upload is no longer open.", status=409
            )
        limit = quota_bytes(user, Feature.BACKUP_GB)
        if limit is not None:
            others = backup_used_bytes(user=user) - backup.size_bytes
            if others + size > limit:
                raise quota_exceeded_error(feature=Feature.BACKUP_GB, limit=limit, used=others, incoming=size)
        backup.size_bytes = size
        backup.status = BackupStatus.COMPLETE
        backup.completed_at = timezone.now()
        backup.save(update_fields=["size_bytes", "status", "completed_at", "updated_at"])
        return backup


def backup_upload(
    *, user: Any, headers: BackupHeaders, read: Callable[[int], bytes], content_length: int | None
) -> Backup:
    """Stream a backup body into a new blob, hashing as it goes; it becomes latest only if verified."""
    key = blob_new_key(kind="backups", user_id=user.id)
    backup = backup_reserve(user=user, headers=headers, declared_size=content_length, key=key)
    room = backup_room_left(user=user, backup=backup)
    caps = [cap for cap in (content_length, room) if cap is not None]
    reader = HashingReader(read, limit=min(caps) if caps else None)
    try:
        blob_write_stream(key=key, reader=reader)
        if reader.size == 0:
            raise ApplicationError(StorageErrorCode.EMPTY_BACKUP, "The backup body is empty.")
        if content_length is not None and reader.size != content_length:
            raise ApplicationError(
                StorageErrorCode.SIZE_MISMATCH,
                f"Received {reader.size} bytes but Content-Length said {content_length}.",
            )
        if not checksum_matches(computed_hex=reader.hexdigest(), expected_hex=headers.checksum):
            raise ApplicationError(
                StorageErrorCode.CHECKSUM_MISMATCH,
                "The backup does not match X-Backup-Checksum; it was discarded and the previous backup kept.",
                fields={"X-Backup-Checksum": ["Does not match the SHA-256 of the body."]},
            )
        return backup_complete(user=user, backup_id=backup.id, size=reader.size)
    except LimitExceeded:
        backup_fail(backup=backup)
        if content_length is None and room is not None:  # the cap that stopped it was the quota
            limit = quota_bytes(user, Feature.BACKUP_GB) or 0
            raise quota_exceeded_error(
                feature=Feature.BACKUP_GB, limit=limit, used=limit - room, incoming=reader.size, status=BODY_OVER_QUOTA
            ) from None
        raise ApplicationError(
            StorageErrorCode.SIZE_MISMATCH, f"The body is longer than Content-Length ({content_length})."
        ) from None
    except BaseException:
        # An interrupted stream, a storage error, a mismatch: no partial is ever visible.
        backup_fail(backup=backup)
        raise
    finally:
        reader.close()


def backup_delete(*, user: Any, backup_id: Any) -> None:
    with transaction.atomic():
        backup = (
            Backup.objects.select_for_update()
            .filter(user=user, id=backup_id)
            .exclude(status=BackupStatus.FAILED)
            .first()
        )
        if backup is None:
            raise NotFoundError("Backup")
        key, upload_id = backup.blob_key, backup.multipart_upload_id
        open_multipart = backup.status == BackupStatus.UPLOADING and upload_id
        backup.delete()
        transaction.on_commit(
            lambda: s3_multipart_abort(key=key, upload_id=upload_id) if open_multipart else blob_delete(key=key)
        )


def backups_abandoned_cleanup(*, older_than: timedelta | None = None) -> int:
    """Fail uploads that never finished (a crashed PUT, a multipart the client gave up on)."""
    cutoff = timezone.now() - (older_than or timedelta(hours=settings.BACKUP_MULTIPART_STALE_HOURS))
    stale = list(Backup.objects.filter(status=BackupStatus.UPLOADING, created_at__lt=cutoff))
    for backup in stale:
        if backup.multipart_upload_id:
            s3_multipart_abort(key=backup.blob_key, upload_id=backup.multipart_upload_id)
        backup_fail(backup=backup)
    # A verification whose task was lost (broker down at complete time) is queued again.
    for backup_id in Backup.objects.filter(status=BackupStatus.VERIFYING, updated_at__lt=cutoff).values_list(
        "id", flat=True
    ):
        backup_verify_enqueue(backup_id=backup_id)
    return len(stale)


def backup_verify_enqueue(*, backup_id: Any) -> None:
    """Queue the worker that hashes an assembled multipart backup (``multipart.backup_verify``)."""
    current_app.signature(BACKUP_VERIFY_TASK, args=[str(backup_id)]).delay()
