"""Presigned multipart backups (S3 only): the bytes go from the client straight to S3.

The row is reserved like any backup (``backups.backup_reserve``); after ``complete`` S3 assembles
the parts, the size is checked at once and the SHA-256 in a worker (``backup_verify``), which
makes the backup latest only if it matches.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.billing.tiers import Feature, require_feature
from apps.core.errors import ApplicationError, NotFoundError

from .backups import BackupHeaders, backup_complete, backup_fail, backup_reserve, backup_verify_enqueue
from .blob_store import (
    HashingReader,
    blob_new_key,
    blob_storage_is_s3,
    s3_bucket_name,
    s3_client,
    s3_multipart_abort,
    s3_object_key,
)
from .checksums import checksum_matches
from .error_codes import StorageErrorCode
from .models import Backup, BackupStatus

logger = logging.getLogger(__name__)

# S3 multipart limits: parts of at least 5 MiB (except the last), at most 10,000 of them, and an
# object of at most 5 TiB (which also keeps a declared size inside the bigint column).
MULTIPART_MIN_PART_SIZE = 8 * 1024 * 1024
MULTIPART_MAX_PARTS = 10_000
MULTIPART_MAX_SIZE = 5 * 1024**4


def _require_s3() -> None:
    if not blob_storage_is_s3():
        raise ApplicationError(
            StorageErrorCode.MULTIPART_UNAVAILABLE,
            "Presigned multipart uploads need S3 storage; use PUT /api/v1/backup.",
            status=400,
        )


def multipart_part_size(*, size_bytes: int) -> int:
    return max(MULTIPART_MIN_PART_SIZE, math.ceil(size_bytes / MULTIPART_MAX_PARTS))


def backup_multipart_initiate(*, user: Any, headers: BackupHeaders, size_bytes: int) -> Backup:
    _require_s3()
    key = blob_new_key(kind="backups", user_id=user.id)
    require_feature(user, Feature.BACKUP_GB)
    upload = s3_client().create_multipart_upload(
        Bucket=s3_bucket_name(),
        Key=s3_object_key(key),
        ContentType="application/octet-stream",
        ServerSideEncryption="AES256",
    )
    try:
        return backup_reserve(
            user=user,
            headers=headers,
            declared_size=size_bytes,
            key=key,
            over_quota_status=403,
            multipart_upload_id=upload["UploadId"],
        )
    except BaseException:
        s3_multipart_abort(key=key, upload_id=upload["UploadId"])
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
                "Key": s3_object_key(backup.blob_key),
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
    client, bucket, key = s3_client(), s3_bucket_name(), s3_object_key(backup.blob_key)
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
        backup_fail(backup=backup)
        raise ApplicationError(
            StorageErrorCode.SIZE_MISMATCH,
            f"The assembled backup is {size} bytes, not the {backup.size_bytes} declared; it was discarded.",
        )
    Backup.objects.filter(id=backup.id).update(
        status=BackupStatus.VERIFYING, chunk_count=len(parts), updated_at=timezone.now()
    )
    backup.status, backup.chunk_count = BackupStatus.VERIFYING, len(parts)

    transaction.on_commit(lambda: backup_verify_enqueue(backup_id=backup.id))
    return backup


def backup_verify(*, backup_id: Any) -> Backup | None:
    """Stream an assembled multipart backup from S3, hash it and make it latest if it matches."""
    backup = Backup.objects.filter(id=backup_id, status=BackupStatus.VERIFYING).select_related("user").first()
    if backup is None:
        return None
    body = s3_client().get_object(Bucket=s3_bucket_name(), Key=s3_object_key(backup.blob_key))["Body"]
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
        backup_fail(backup=backup)
        return None
    try:
        return backup_complete(user=backup.user, backup_id=backup.id, size=reader.size)
    except ApplicationError:
        backup_fail(backup=backup)
        return None
