"""Stable error codes of storage: checksums, blobs, backups."""

from enum import StrEnum


class StorageErrorCode(StrEnum):
    CHECKSUM_MISMATCH = "checksum_mismatch"
    INVALID_CHECKSUM = "invalid_checksum"
    INVALID_BLOB = "invalid_blob"
    BLOB_TOO_LARGE = "blob_too_large"
    QUOTA_EXCEEDED = "quota_exceeded"
    INVALID_BACKUP_HEADER = "invalid_backup_header"
    EMPTY_BACKUP = "empty_backup"
    SIZE_MISMATCH = "size_mismatch"
    MULTIPART_UNAVAILABLE = "multipart_unavailable"
    MULTIPART_NOT_OPEN = "multipart_not_open"
    INVALID_PARTS = "invalid_parts"
    INVALID_VECTOR = "invalid_vector"
    INVALID_SEARCH = "invalid_search"
    BLOB_MISSING = "blob_missing"
