"""What the server keeps for a user without reading it: record, vector-item and backup metadata.

Blobs live in the ``blobs`` storage (S3 or the filesystem) under a fresh key per write; the
database holds only the key, the client's SHA-256 checksum and the size.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from pgvector.django import VectorField

from apps.core.models import BaseModel
from apps.core.vectors import EMBEDDING_DIMENSIONS

VECTOR_DIMENSIONS = EMBEDDING_DIMENSIONS


class StorageRecord(BaseModel):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="storage_records")
    table = models.CharField(max_length=64)
    blob_key = models.CharField(max_length=512, unique=True)
    checksum = models.CharField(max_length=64)  # lower-case hex SHA-256 of the ciphertext
    size_bytes = models.BigIntegerField()

    class Meta(BaseModel.Meta):
        indexes = [
            models.Index(fields=["user", "table", "-created_at"], name="storage_rec_user_table_idx"),
            # The list of all tables, newest first: a page reads its own rows by index, not every row.
            models.Index(fields=["user", "-created_at"], name="storage_rec_user_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.table}/{self.id}"


class VectorItem(BaseModel):
    """A client-encrypted item; ``vector`` is optional and supplied by the client (the blob is opaque)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="vector_items")
    item_id = models.CharField(max_length=255)  # the client's id
    # Small ciphertexts returned with every search hit, so they stay in the row, not in blob storage.
    blob = models.BinaryField()
    checksum = models.CharField(max_length=64)
    size_bytes = models.BigIntegerField()
    vector = VectorField(dimensions=VECTOR_DIMENSIONS, null=True, blank=True)

    class Meta(BaseModel.Meta):
        constraints = [models.UniqueConstraint(fields=["user", "item_id"], name="storage_vector_user_item_unique")]
        indexes = [
            models.Index(fields=["user", "checksum"], name="storage_vec_user_checksum_idx"),
            # No HNSW index: with the per-user filter an approximate index scan can return fewer than
            # top_k of the user's items (pgvector 0.6 has no iterative scans), so search is an exact
            # cosine scan over one user's items, bounded by their storage quota.
        ]

    def __str__(self) -> str:
        return self.item_id


class RecordTally(models.Model):
    """How many records a user keeps in one of their tables, and their bytes: what the records list's
    count and the storage quota read instead of scanning every record. PostgreSQL's triggers keep
    it in the writing transaction (``apps.core.tallies``, migration 0006); nothing else writes it."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    table = models.CharField(max_length=64)
    records = models.BigIntegerField(default=0)
    bytes = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "table"], name="storage_record_tally_unique")]

    def __str__(self) -> str:
        return f"{self.table}: {self.records}"


class VectorTally(models.Model):
    """The bytes of a user's vector items, kept as ``RecordTally`` is (migration 0006)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="+")
    items = models.BigIntegerField(default=0)
    bytes = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"vectors: {self.items}"


class BackupStatus(models.TextChoices):
    UPLOADING = "uploading", "Uploading"  # bytes still arriving (streamed PUT or presigned multipart)
    VERIFYING = "verifying", "Verifying"  # multipart completed on S3; the checksum is being checked
    COMPLETE = "complete", "Complete"  # verified; the newest complete one is "latest"
    FAILED = "failed", "Failed"  # checksum/size mismatch or aborted; the blob is gone


class Backup(BaseModel):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="backups")
    version = models.BigIntegerField()
    timestamp = models.BigIntegerField()  # the client's X-Backup-Timestamp
    checksum = models.CharField(max_length=64)
    size_bytes = models.BigIntegerField(default=0)
    blob_key = models.CharField(max_length=512, unique=True)
    status = models.CharField(max_length=16, choices=BackupStatus.choices, default=BackupStatus.UPLOADING)
    multipart_upload_id = models.CharField(max_length=1024, blank=True, default="")
    completed_at = models.DateTimeField(null=True, blank=True)
    # The parts it was uploaded in: 1 for a single PUT, the multipart part count otherwise.
    chunk_count = models.PositiveIntegerField(default=1)

    class Meta(BaseModel.Meta):
        indexes = [
            models.Index(fields=["user", "status", "-completed_at"], name="storage_backup_latest_idx"),
            models.Index(fields=["status", "created_at"], name="storage_backup_status_idx"),
        ]

    def __str__(self) -> str:
        return f"backup v{self.version} ({self.status})"
