"""Writes of storage: encrypted records, vector items and backups. The server never decrypts.

Order of every write: verify the checksum, write the blob under a fresh key, then (in one
transaction, under the user's quota lock) check the quota against what the database says is
stored and commit the row. A failure after the blob is written deletes that orphan blob; an
old blob replaced or deleted goes only once the transaction has committed.
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.billing.error_codes import BillingErrorCode
from apps.billing.tiers import Feature, quota_bytes, require_feature
from apps.core.errors import ApplicationError, NotFoundError

from .blob_store import (
    HashingReader,
    LimitExceeded,
    blob_delete,
    blob_new_key,
    blob_storage_is_s3,
    blob_write_bytes,
    blob_write_stream,
    s3_bucket_name,
    s3_client,
)
from .checksums import checksum_matches, checksum_normalize, checksum_verify
from .error_codes import StorageErrorCode
from .lock_objects import user_quota_lock
from .models import VECTOR_DIMENSIONS, Backup, BackupStatus, StorageRecord, VectorItem
from .selectors import backup_used_bytes, record_get, storage_used_bytes

logger = logging.getLogger(__name__)

# S3 multipart limits: parts of at least 5 MiB (except the last), at most 10,000 of them.
MULTIPART_MIN_PART_SIZE = 8 * 1024 * 1024
MULTIPART_MAX_PARTS = 10_000


# ---------------------------------------------------------------------------------------------
# Shared checks
# ---------------------------------------------------------------------------------------------


def blob_decode(*, value: str, field: str = "blob") -> bytes:
    """Strict standard base64 (the client's encoding); anything else is a 400, not a guess."""
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise ApplicationError(
            StorageErrorCode.INVALID_BLOB,
            f"'{field}' must be standard base64.",
            fields={field: ["Not valid base64."]},
        ) from None
    limit = settings.STORAGE_RECORD_MAX_BYTES
    if len(data) > limit:
        raise ApplicationError(
            StorageErrorCode.BLOB_TOO_LARGE,
            f"'{field}' is {len(data)} bytes; the limit is {limit}.",
            status=413,
            fields={field: [f"At most {limit} bytes."]},
        )
    return data


def _quota_exceeded(*, feature: Feature, limit: int, used: int, incoming: int) -> ApplicationError:
    return ApplicationError(
        BillingErrorCode.QUOTA_EXCEEDED,
        f"This would use {used + incoming} bytes of the {limit}-byte '{feature}' quota of your plan.",
        status=403,
        extra={"feature": str(feature), "limit_bytes": limit, "used_bytes": used, "requested_bytes": incoming},
    )


def _require_storage_room(*, user: Any, incoming: int, releasing: int = 0) -> None:
    """Must run inside a transaction holding the user's storage lock."""
    limit = quota_bytes(user, Feature.CLOUD_STORAGE_GB)
    if limit is None:
        return
    used = storage_used_bytes(user=user) - releasing
    if used + incoming > limit:
        raise _quota_exceeded(feature=Feature.CLOUD_STORAGE_GB, limit=limit, used=used, incoming=incoming)


# ---------------------------------------------------------------------------------------------
# Encrypted records
# ---------------------------------------------------------------------------------------------


def _record_blob_write(*, user: Any, blob: bytes, checksum: str) -> tuple[str, str]:
    """Gate, verify and write a record's bytes under a fresh key; returns (checksum, key)."""
    require_feature(user, Feature.CLOUD_STORAGE_GB)
    checksum = checksum_normalize(checksum)
    checksum_verify(data=blob, expected_hex=checksum)
    key = blob_new_key(kind="records", user_id=user.id)
    blob_write_bytes(key=key, data=blob)
    return checksum, key


def record_create(*, user: Any, table: str, blob: bytes, checksum: str) -> StorageRecord:
    checksum, key = _record_blob_write(user=user, blob=blob, checksum=checksum)
    try:
        with transaction.atomic():
            user_quota_lock(user_id=user.id, scope="storage")
            _require_storage_room(user=user, incoming=len(blob))
            return StorageRecord.objects.create(
                user=user, table=table, blob_key=key, checksum=checksum, size_bytes=len(blob)
            )
    except BaseException:
        blob_delete(key=key)
        raise


def record_update(*, user: Any, record_id: Any, blob: bytes, checksum: str) -> StorageRecord:
    record_get(user=user, record_id=record_id)  # 404 before any work for someone else's id
    checksum, key = _record_blob_write(user=user, blob=blob, checksum=checksum)
    try:
        with transaction.atomic():
            user_quota_lock(user_id=user.id, scope="storage")
            record = StorageRecord.objects.select_for_update().filter(user=user, id=record_id).first()
            if record is None:
                raise NotFoundError("Record")
            _require_storage_room(user=user, incoming=len(blob), releasing=record.size_bytes)
            old_key = record.blob_key
            record.blob_key, record.checksum, record.size_bytes = key, checksum, len(blob)
            record.save(update_fields=["blob_key", "checksum", "size_bytes", "updated_at"])
            # The old bytes stay readable until the new row is committed.
            transaction.on_commit(lambda: blob_delete(key=old_key))
            return record
    except BaseException:
        blob_delete(key=key)
        raise


def record_delete(*, user: Any, record_id: Any) -> None:
    with transaction.atomic():
        record = StorageRecord.objects.select_for_update().filter(user=user, id=record_id).first()
        if record is None:
            raise NotFoundError("Record")
        key = record.blob_key
        record.delete()
        transaction.on_commit(lambda: blob_delete(key=key))


# ---------------------------------------------------------------------------------------------
# Vector items
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VectorInput:
    item_id: str
    blob: bytes
    checksum: str
    vector: list[float] | None = None


FLOAT32_MAX = 3.4028234663852886e38


def vector_validate(*, vector: list[float] | None, field: str) -> list[float] | None:
    if vector is None:
        return None
    # pgvector stores float32: a larger magnitude would fail in the database instead of here.
    if len(vector) != VECTOR_DIMENSIONS or not all(
        math.isfinite(value) and abs(value) <= FLOAT32_MAX for value in vector
    ):
        raise ApplicationError(
            StorageErrorCode.INVALID_VECTOR,
            f"'{field}' must hold {VECTOR_DIMENSIONS} finite float32 numbers (|x| <= {FLOAT32_MAX:.7g}).",
            fields={field: [f"Expected {VECTOR_DIMENSIONS} finite float32 numbers."]},
        )
    if not any(vector):
        raise ApplicationError(
            StorageErrorCode.INVALID_VECTOR,
            f"'{field}' is all zeros; cosine similarity is undefined for it.",
            fields={field: ["Must not be the zero vector."]},
        )
    return vector


def vector_items_upsert(*, user: Any, items: list[VectorInput]) -> int:
    require_feature(user, Feature.CLOUD_STORAGE_GB)
    verified = []
    for index, item in enumerate(items):
        checksum = checksum_normalize(item.checksum, field=f"vectors.{index}.checksum")
        checksum_verify(data=item.blob, expected_hex=checksum, field=f"vectors.{index}.checksum")
        vector = vector_validate(vector=item.vector, field=f"vectors.{index}.vector")
        verified.append(VectorInput(item_id=item.item_id, blob=item.blob, checksum=checksum, vector=vector))
    latest = {item.item_id: item for item in verified}  # the last of a repeated id wins

    with transaction.atomic():
        user_quota_lock(user_id=user.id, scope="storage")
        existing = {
            item.item_id: item
            for item in VectorItem.objects.select_for_update().filter(user=user, item_id__in=list(latest))
        }
        releasing = sum(item.size_bytes for item in existing.values())
        _require_storage_room(user=user, incoming=sum(len(i.blob) for i in latest.values()), releasing=releasing)
        now = timezone.now()
        to_create, to_update = [], []
        for item_id, item in latest.items():
            row = existing.get(item_id)
            if row is None:
                to_create.append(
                    VectorItem(
                        user=user,
                        item_id=item_id,
                        blob=item.blob,
                        checksum=item.checksum,
                        size_bytes=len(item.blob),
                        vector=item.vector,
                    )
                )
            else:
                row.blob, row.checksum, row.size_bytes, row.vector = (
                    item.blob,
                    item.checksum,
                    len(item.blob),
                    item.vector,
                )
                row.updated_at = now
                to_update.append(row)
        VectorItem.objects.bulk_create(to_create)
        VectorItem.objects.bulk_update(to_update, ["blob", "checksum", "size_bytes", "vector", "updated_at"])
    return len(latest)


def vector_items_delete(*, user: Any, item_ids: list[str]) -> int:
    deleted, _ = VectorItem.objects.filter(user=user, item_id__in=item_ids).delete()
    return deleted


# ---------------------------------------------------------------------------------------------
# Backups
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BackupHeaders:
    version: int
    timestamp: int
    checksum: str


def backup_headers_parse(*, version: str | None, timestamp: str | None, checksum: str | None) -> BackupHeaders:
    def integer(value: str | None, header: str) -> int:
        if value is None or not value.strip().isdigit() or len(value.strip()) > 18:
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


def _backup_reserve(*, user: Any, headers: BackupHeaders, declared_size: int | None, key: str, **extra: Any) -> Backup:
    """Check the backup quota and create the in-flight row that reserves ``declared_size`` bytes."""
    require_feature(user, Feature.BACKUP_GB)
    with transaction.atomic():
        user_quota_lock(user_id=user.id, scope="backup")
        limit = quota_bytes(user, Feature.BACKUP_GB)
        if limit is not None:
            used = backup_used_bytes(user=user)
            if used + (declared_size or 0) > limit:
                raise _quota_exceeded(feature=Feature.BACKUP_GB, limit=limit, used=used, incoming=declared_size or 0)
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


def _backup_room_left(*, user: Any, backup: Backup) -> int | None:
    limit = quota_bytes(user, Feature.BACKUP_GB)
    if limit is None:
        return None
    others = backup_used_bytes(user=user) - backup.size_bytes
    return max(0, limit - others)


def _backup_fail(*, backup: Backup) -> None:
    """Mark a backup failed and remove its bytes; the previous latest is untouched."""
    Backup.objects.filter(id=backup.id).update(status=BackupStatus.FAILED, size_bytes=0, updated_at=timezone.now())
    blob_delete(key=backup.blob_key)


def _backup_complete(*, user: Any, backup_id: Any, size: int) -> Backup:
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
                raise _quota_exceeded(feature=Feature.BACKUP_GB, limit=limit, used=others, incoming=size)
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
    backup = _backup_reserve(user=user, headers=headers, declared_size=content_length, key=key)
    room = _backup_room_left(user=user, backup=backup)
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
        return _backup_complete(user=user, backup_id=backup.id, size=reader.size)
    except LimitExceeded:
        _backup_fail(backup=backup)
        if content_length is None and room is not None:  # the cap that stopped it was the quota
            limit = quota_bytes(user, Feature.BACKUP_GB) or 0
            raise _quota_exceeded(
                feature=Feature.BACKUP_GB, limit=limit, used=limit - room, incoming=reader.size
            ) from None
        raise ApplicationError(
            StorageErrorCode.SIZE_MISMATCH, f"The body is longer than Content-Length ({content_length})."
        ) from None
    except BaseException:
        # An interrupted stream, a storage error, a mismatch: no partial is ever visible.
        _backup_fail(backup=backup)
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
            lambda: _multipart_abort(key=key, upload_id=upload_id) if open_multipart else blob_delete(key=key)
        )


# --- Presigned multipart (S3 only): the bytes go from the client straight to S3 --------------


def _require_s3() -> None:
    if not blob_storage_is_s3():
        raise ApplicationError(
            StorageErrorCode.MULTIPART_UNAVAILABLE,
            "Presigned multipart uploads need S3 storage; use PUT /api/v1/backup.",
            status=400,
        )


def multipart_part_size(*, size_bytes: int) -> int:
    return max(MULTIPART_MIN_PART_SIZE, math.ceil(size_bytes / MULTIPART_MAX_PARTS))


def _storage_key(key: str) -> str:
    from django.core.files.storage import storages

    return storages["blobs"]._normalize_name(key)


def backup_multipart_initiate(*, user: Any, headers: BackupHeaders, size_bytes: int) -> Backup:
    _require_s3()
    key = blob_new_key(kind="backups", user_id=user.id)
    require_feature(user, Feature.BACKUP_GB)
    upload = s3_client().create_multipart_upload(
        Bucket=s3_bucket_name(),
        Key=_storage_key(key),
        ContentType="application/octet-stream",
        ServerSideEncryption="AES256",
    )
    try:
        return _backup_reserve(
            user=user, headers=headers, declared_size=size_bytes, key=key, multipart_upload_id=upload["UploadId"]
        )
    except BaseException:
        _multipart_abort(key=key, upload_id=upload["UploadId"])
        raise


def _open_multipart(*, user: Any, backup_id: Any) -> Backup:
    backup = Backup.objects.filter(user=user, id=backup_id).exclude(status=BackupStatus.FAILED).first()
    if backup is None or not backup.multipart_upload_id:
        raise NotFoundError("Backup upload")
    if backup.status != BackupStatus.UPLOADING:
        raise ApplicationError(StorageErrorCode.MULTIPART_NOT_OPEN, "This backup upload is no longer open.", status=409)
    return backup


def backup_multipart_part_urls(*, user: Any, backup_id: Any, part_numbers: list[int]) -> dict[int, str]:
    _require_s3()
    backup = _open_multipart(user=user, backup_id=backup_id)
    part_count = math.ceil(backup.size_bytes / multipart_part_size(size_bytes=backup.size_bytes))
    bad = [n for n in part_numbers if not 1 <= n <= part_count]
    if bad:
        raise ApplicationError(
            StorageErrorCode.INVALID_PARTS,
            f"Part numbers run from 1 to {part_count} for this upload.",
            fields={"part_numbers": [f"Out of range: {bad[:10]}"]},
        )
    client = s3_client()
    return {
        number: client.generate_presigned_url(
            "upload_part",
            Params={
                "Bucket": s3_bucket_name(),
                "Key": _storage_key(backup.blob_key),
                "UploadId": backup.multipart_upload_id,
                "PartNumber": number,
            },
            ExpiresIn=settings.AWS_QUERYSTRING_EXPIRE,
            HttpMethod="PUT",
        )
        for number in part_numbers
    }


def backup_multipart_complete(*, user: Any, backup_id: Any, parts: list[dict[str, Any]]) -> Backup:
    """Assemble the parts on S3, check the size now and the checksum in a worker (bounded memory)."""
    _require_s3()
    backup = _open_multipart(user=user, backup_id=backup_id)
    numbers = [part["part_number"] for part in parts]
    if numbers != sorted(set(numbers)) or not numbers:
        raise ApplicationError(
            StorageErrorCode.INVALID_PARTS,
            "Parts must be listed once each, in ascending order.",
            fields={"parts": ["Ascending, unique part numbers."]},
        )
    client, bucket, key = s3_client(), s3_bucket_name(), _storage_key(backup.blob_key)
    try:
        client.complete_multipart_upload(
            Bucket=bucket,
            Key=key,
            UploadId=backup.multipart_upload_id,
            MultipartUpload={"Parts": [{"PartNumber": p["part_number"], "ETag": p["etag"]} for p in parts]},
        )
    except client.exceptions.ClientError as error:
        raise ApplicationError(
            StorageErrorCode.INVALID_PARTS,
            f"S3 refused to assemble the parts: {error.response.get('Error', {}).get('Code', 'error')}.",
        ) from None
    size = client.head_object(Bucket=bucket, Key=key)["ContentLength"]
    if size != backup.size_bytes:
        _backup_fail(backup=backup)
        raise ApplicationError(
            StorageErrorCode.SIZE_MISMATCH,
            f"The assembled backup is {size} bytes, not the {backup.size_bytes} declared; it was discarded.",
        )
    Backup.objects.filter(id=backup.id).update(status=BackupStatus.VERIFYING, updated_at=timezone.now())
    backup.status = BackupStatus.VERIFYING

    from .tasks import backup_verify_task  # tasks call services; import here to keep the layering one-way

    transaction.on_commit(lambda: backup_verify_task.delay(str(backup.id)))
    return backup


def backup_verify(*, backup_id: Any) -> Backup | None:
    """Stream an assembled multipart backup from S3, hash it and make it latest if it matches."""
    backup = Backup.objects.filter(id=backup_id, status=BackupStatus.VERIFYING).select_related("user").first()
    if backup is None:
        return None
    body = s3_client().get_object(Bucket=s3_bucket_name(), Key=_storage_key(backup.blob_key))["Body"]
    reader = HashingReader(body.read)
    try:
        while reader.read(1024 * 1024):
            pass
        digest = reader.hexdigest()
    finally:
        reader.close()
        body.close()
    if reader.size != backup.size_bytes or not checksum_matches(computed_hex=digest, expected_hex=backup.checksum):
        logger.warning("storage: multipart backup %s failed verification", backup.id)
        _backup_fail(backup=backup)
        return None
    try:
        return _backup_complete(user=backup.user, backup_id=backup.id, size=reader.size)
    except ApplicationError:
        _backup_fail(backup=backup)
        return None


def _multipart_abort(*, key: str, upload_id: str) -> None:
    try:
        s3_client().abort_multipart_upload(Bucket=s3_bucket_name(), Key=_storage_key(key), UploadId=upload_id)
    except Exception:
        logger.warning("storage: could not abort multipart upload %s", upload_id, exc_info=True)


def backups_abandoned_cleanup(*, older_than: timedelta | None = None) -> int:
    """Fail uploads that never finished (a crashed PUT, a multipart the client gave up on)."""
    cutoff = timezone.now() - (older_than or timedelta(hours=settings.BACKUP_MULTIPART_STALE_HOURS))
    stale = list(Backup.objects.filter(status=BackupStatus.UPLOADING, created_at__lt=cutoff))
    for backup in stale:
        if backup.multipart_upload_id:
            _multipart_abort(key=backup.blob_key, upload_id=backup.multipart_upload_id)
        _backup_fail(backup=backup)
    # A verification whose task was lost (broker down at complete time) is queued again.
    from .tasks import backup_verify_task

    for backup_id in Backup.objects.filter(status=BackupStatus.VERIFYING, updated_at__lt=cutoff).values_list(
        "id", flat=True
    ):
        backup_verify_task.delay(str(backup_id))
    return len(stale)
