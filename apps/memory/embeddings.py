"""Validation of the embeddings callers hand to memory (memory never computes them)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from apps.core.errors import ApplicationError

from .error_codes import MemoryErrorCode
from .models import EMBEDDING_DIMENSIONS


def validate_embedding(embedding: Sequence[float] | None, *, field: str = "embedding") -> list[float]:
    """Exactly ``EMBEDDING_DIMENSIONS`` finite numbers, not all zero (cosine needs a direction)."""
    if embedding is None or isinstance(embedding, str | bytes) or not isinstance(embedding, Sequence):
        raise _invalid_embedding(field, f"must be a list of {EMBEDDING_DIMENSIONS} numbers.")
    if len(embedding) != EMBEDDING_DIMENSIONS:
        raise _invalid_embedding(field, f"must have {EMBEDDING_DIMENSIONS} dimensions, got {len(embedding)}.")
    values: list[float] = []
    for item in embedding:
        if isinstance(item, bool) or not isinstance(item, int | float) or not math.isfinite(item):
            raise _invalid_embedding(field, "must hold only finite numbers.")
        values.append(float(item))
    if not any(values):
        raise _invalid_embedding(field, "must not be the zero vector.")
    return values


def _invalid_embedding(field: str, reason: str) -> ApplicationError:
    return ApplicationError(
        MemoryErrorCode.EMBEDDING_INVALID, f"The {field} {reason}", status=400, fields={field: [reason]}
    )
