"""Celery tasks of storage: thin wrappers around services."""

from __future__ import annotations

from celery import shared_task

from .backups import BACKUP_VERIFY_TASK, backups_abandoned_cleanup
from .multipart import backup_verify


@shared_task(name=BACKUP_VERIFY_TASK, acks_late=True)
def backup_verify_task(backup_id: str) -> bool:
    """Hash an assembled multipart backup on S3; it becomes latest only if it matches."""
    return backup_verify(backup_id=backup_id) is not None


@shared_task(name="storage.abort_stale_uploads")
def abort_stale_uploads_task() -> int:
    """Abort multipart uploads and streamed PUTs that never finished (run by Celery beat)."""
    return backups_abandoned_cleanup()
