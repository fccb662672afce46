"""What account deletion erases in storage: every blob of the user's records and backups (an
open multipart upload is aborted). The rows go with the user row's cascade afterwards."""

from __future__ import annotations

import uuid

from .blob_store import blob_storage, blob_storage_is_s3, s3_multipart_abort
from .models import Backup, StorageRecord


def storage_erase_user(user_id: uuid.UUID) -> None:
    """Delete the user's blobs; a storage failure raises (the erasure task retries)."""
    storage = blob_storage()
    for backup in Backup.objects.filter(user_id=user_id).only("blob_key", "multipart_upload_id"):
        if backup.multipart_upload_id and blob_storage_is_s3():
            s3_multipart_abort(key=backup.blob_key, upload_id=backup.multipart_upload_id)
        storage.delete(backup.blob_key)
    for key in StorageRecord.objects.filter(user_id=user_id).values_list("blob_key", flat=True):
        storage.delete(key)
