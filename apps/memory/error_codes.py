"""Stable error codes of the memory app (on top of ``apps.core.errors.CoreErrorCode``)."""

from enum import StrEnum


class MemoryErrorCode(StrEnum):
    EMBEDDING_INVALID = "memory_embedding_invalid"
    CONTENT_INVALID = "memory_content_invalid"
    CONFIDENCE_INVALID = "memory_confidence_invalid"
    LIMIT_INVALID = "memory_limit_invalid"
