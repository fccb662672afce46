"""Writes of client-encrypted records (the server never decrypts them).

Order of every write: verify the checksum, write the blob under a fresh key, then (in one
transaction, under the user's quota lock) check the quota against what the database says is
stored and commit the row. A failure after the blob is written deletes that orphan blob; an
old blob replaced or deleted goes only once the transaction has committed.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from apps.billing.tiers import Feature, require_feature
from apps.core.errors import NotFoundError

from .blob_store import blob_delete, blob_new_key, blob_write_bytes
from .checksums import checksum_normalize, checksum_verify
from .lock_objects import user_quota_lock
from .models import StorageRecord
from .quotas import storage_room_require
from .selectors import record_get


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
            storage_room_require(user=user, incoming=len(blob))
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
            storage_room_require(user=user, incoming=len(blob), releasing=record.size_bytes)
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
