"""Writes to a user's memory: every text is encrypted with the owner's key before it is saved.

Memory knows nothing of LLMs: callers (the assistant) compute embeddings and pass them in.
"""

from __future__ import annotations

import uuid

from django.db import transaction
from django.utils import timezone

from apps.core.errors import ApplicationError, NotFoundError

from .crypto import lookup_digest, seal, seal_optional
from .embeddings import validate_embedding
from .error_codes import MemoryErrorCode
from .models import (
    MODEL_OF_KIND,
    AssociativeMemory,
    CoreMemory,
    Episode,
    MemoryKind,
    ProactivePattern,
)

CORE_KEY_MAX_LENGTH = 128
CORE_VALUE_MAX_LENGTH = 4000
CONTENT_MAX_LENGTH = 16000
SESSION_ID_MAX_LENGTH = 128
ENTITY_FIELD_MAX_LENGTH = 128
PATTERN_MAX_LENGTH = 2000

UserId = uuid.UUID | str


def _text(value: object, *, field: str, max_length: int) -> str:
    if not isinstance(value, str) or not value.strip():
        reason = "must be a non-empty string."
    elif len(value) > max_length:
        reason = f"must be at most {max_length} characters."
    else:
        return value.strip()
    raise ApplicationError(
        MemoryErrorCode.CONTENT_INVALID, f"The {field} {reason}", status=400, fields={field: [reason]}
    )


def _optional_text(value: object, *, field: str, max_length: int) -> str | None:
    return None if value is None else _text(value, field=field, max_length=max_length)


# --- core ------------------------------------------------------------------------------------


def core_memory_set(*, user_id: UserId, key: str, value: str) -> None:
    """Create or replace the preference ``key`` of the user."""
    key = _text(key, field="key", max_length=CORE_KEY_MAX_LENGTH)
    value = _text(value, field="value", max_length=CORE_VALUE_MAX_LENGTH)
    digest = lookup_digest(user_id=user_id, text=key)
    CoreMemory.objects.update_or_create(
        user_id=user_id,
        key_digest=digest,
        defaults={
            "key_encrypted": seal(user_id=user_id, text=key),
            "value_encrypted": seal(user_id=user_id, text=value),
        },
    )


def core_memory_delete(*, user_id: UserId, key: str) -> None:
    """Forget the preference ``key``; forgetting an unknown key is not an error."""
    key = _text(key, field="key", max_length=CORE_KEY_MAX_LENGTH)
    CoreMemory.objects.filter(user_id=user_id, key_digest=lookup_digest(user_id=user_id, text=key)).delete()


# --- associative -----------------------------------------------------------------------------


def associative_memory_add(
    *,
    user_id: UserId,
    content: str,
    embedding: list[float],
    entity_type: str | None = None,
    entity_id: str | None = None,
) -> AssociativeMemory:
    content = _text(content, field="content", max_length=CONTENT_MAX_LENGTH)
    vector = validate_embedding(embedding)
    entity_type = _optional_text(entity_type, field="entity_type", max_length=ENTITY_FIELD_MAX_LENGTH)
    entity_id = _optional_text(entity_id, field="entity_id", max_length=ENTITY_FIELD_MAX_LENGTH)
    return AssociativeMemory.objects.create(
        user_id=user_id,
        content_encrypted=seal(user_id=user_id, text=content),
        embedding=vector,
        entity_type_encrypted=seal_optional(user_id=user_id, text=entity_type),
        entity_id_encrypted=seal_optional(user_id=user_id, text=entity_id),
    )


# --- episodic --------------------------------------------------------------------------------


def episode_record(*, user_id: UserId, session_id: str, summary: str, embedding: list[float] | None = None) -> Episode:
    session_id = _text(session_id, field="session_id", max_length=SESSION_ID_MAX_LENGTH)
    summary = _text(summary, field="summary", max_length=CONTENT_MAX_LENGTH)
    vector = None if embedding is None else validate_embedding(embedding)
    return Episode.objects.create(
        user_id=user_id,
        session_id=session_id,
        summary_encrypted=seal(user_id=user_id, text=summary),
        embedding=vector,
        summarised_at=timezone.now(),
    )


# --- proactive -------------------------------------------------------------------------------


def pattern_upsert(*, user_id: UserId, description: str, confidence: float) -> ProactivePattern:
    """Record a pattern, or update the confidence of the same pattern seen before."""
    description = _text(description, field="description", max_length=PATTERN_MAX_LENGTH)
    if (
        isinstance(confidence, bool)
        or not isinstance(confidence, int | float)
        # The range alone: it is false for NaN and infinity, and isfinite() raises on an int too
        # large for a float.
        or not 0.0 <= confidence <= 1.0
    ):
        reason = "must be a number between 0 and 1."
        raise ApplicationError(
            MemoryErrorCode.CONFIDENCE_INVALID,
            f"The confidence {reason}",
            status=400,
            fields={"confidence": [reason]},
        )
    pattern, _ = ProactivePattern.objects.update_or_create(
        user_id=user_id,
        description_digest=lookup_digest(user_id=user_id, text=description),
        defaults={
            "description_encrypted": seal(user_id=user_id, text=description),
            "confidence": float(confidence),
        },
    )
    return pattern


# --- deletion --------------------------------------------------------------------------------


def memory_item_delete(*, user_id: UserId, kind: MemoryKind, item_id: uuid.UUID | str) -> None:
    """Delete one item of the user's memory; someone else's id is simply not found."""
    try:
        item_uuid = uuid.UUID(str(item_id))
    except ValueError as exc:
        raise NotFoundError("Memory item") from exc
    deleted, _ = MODEL_OF_KIND[MemoryKind(kind)].objects.filter(user_id=user_id, id=item_uuid).delete()
    if not deleted:
        raise NotFoundError("Memory item")


def memory_kind_delete(*, user_id: UserId, kind: MemoryKind) -> int:
    """Delete every item of one kind; returns how many rows were deleted."""
    deleted, _ = MODEL_OF_KIND[MemoryKind(kind)].objects.filter(user_id=user_id).delete()
    return deleted


@transaction.atomic
def memory_delete_all(*, user_id: UserId) -> int:
    """Delete all of the user's memory (rows, not flags); returns how many rows were deleted."""
    return sum(memory_kind_delete(user_id=user_id, kind=kind) for kind in MemoryKind)
