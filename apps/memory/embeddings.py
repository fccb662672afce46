"""Validation of the embeddings callers hand to memory (memory never computes them)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from apps.core.errors import ApplicationError

from .error_codes import MemoryErrorCode
from .models import EMBEDDING_DIMENSIONS

# Exact type only: subclasses, ints (and so bools) take the item-by-item path below.
_PLAIN_FLOAT = frozenset({float})
# pgvector stores single precision and refuses anything beyond it (a database error, not a 400).
_FLOAT32_MAX = 3.4028234663852886e38


def validate_embedding(embedding: Sequence[float] | None, *, field: str = "embedding") -> list[float]:
    """Exactly ``EMBEDDING_DIMENSIONS`` finite numbers within single precision, not all zero."""
    # Every chat turn validates its query vector: a list of plain floats is checked with C-level
    # loops (about 0.06 ms instead of 0.24 ms for 1,536 items); anything else, or any fault, goes
    # the item-by-item way for its precise error.
    if (
        type(embedding) is list
        and len(embedding) == EMBEDDING_DIMENSIONS
        and set(map(type, embedding)) == _PLAIN_FLOAT
        and all(map(math.isfinite, embedding))
        and max(map(abs, embedding)) <= _FLOAT32_MAX
        and any(embedding)
    ):
        return list(embedding)
    if embedding is None or isinstance(embedding, str | bytes) or not isinstance(embedding, Sequence):
        raise _invalid_embedding(field, f"must be a list of {EMBEDDING_DIMENSIONS} numbers.")
    if len(embedding) != EMBEDDING_DIMENSIONS:
        raise _invalid_embedding(field, f"must have {EMBEDDING_DIMENSIONS} dimensions, got {len(embedding)}.")
    values: list[float] = []
    for item in embedding:
        if (
            isinstance(item, bool)
            or not isinstance(item, int | float)
            or abs(item) > _FLOAT32_MAX  # before isfinite, which raises on an int too large for a float
            or not math.isfinite(item)
        ):
            raise _invalid_embedding(field, "must hold only finite numbers.")
        values.append(float(item))
    if not any(values):
        raise _invalid_embedding(field, "must not be the zero vector.")
    return values


def _invalid_embedding(field: str, reason: str) -> ApplicationError:
    return ApplicationError(
        MemoryErrorCode.EMBEDDING_INVALID, f"The {field} {reason}", status=400, fields={field: [reason]}
    )
