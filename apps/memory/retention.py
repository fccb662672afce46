"""Per-user caps on memory and the eviction rule that keeps each kind under its cap.

The rule, per kind, when a write takes a user over the cap (``MEMORY_*_MAX_PER_USER``):

* associative: the least recently reinforced memories go first (oldest ``updated_at``; learning
  the same thing again refreshes it, so what keeps coming up stays);
* episodic: the oldest episodes go first (``created_at``);
* proactive: the least confident patterns go first, the stalest among equals.

Eviction runs in the writer's transaction under the user's memory lock, so a cap is never
exceeded after a commit, even with turns of the same user learning in parallel.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import connection

from .models import AssociativeMemory, Episode, MemoryKind, MemoryModel, ProactivePattern
from .selectors import memory_kind_count

UserId = uuid.UUID | str

_ORDER: dict[MemoryKind, tuple[type[MemoryModel], list[str]]] = {
    MemoryKind.ASSOCIATIVE: (AssociativeMemory, ["updated_at", "created_at"]),
    MemoryKind.EPISODIC: (Episode, ["created_at"]),
    MemoryKind.PROACTIVE: (ProactivePattern, ["confidence", "updated_at"]),
}


def memory_cap(kind: MemoryKind) -> int:
    return {
        MemoryKind.ASSOCIATIVE: settings.MEMORY_ASSOCIATIVE_MAX_PER_USER,
        MemoryKind.EPISODIC: settings.MEMORY_EPISODES_MAX_PER_USER,
        MemoryKind.PROACTIVE: settings.MEMORY_PATTERNS_MAX_PER_USER,
    }[kind]


def user_memory_lock(*, user_id: UserId) -> None:
    """Serialise memory writes of one user until the end of the current transaction."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"memory:{user_id}"])


def memory_evict_over_cap(*, user_id: UserId, kind: MemoryKind) -> int:
    """Delete what exceeds the user's cap for ``kind`` by the module's rule; returns how many went."""
    model, order = _ORDER[kind]
    cap = memory_cap(kind)
    count = memory_kind_count(user_id=user_id, kind=kind)  # the kind's tally: no count of its rows per write
    if count <= cap:
        return 0
    doomed = list(model.objects.filter(user_id=user_id).order_by(*order).values_list("id", flat=True)[: count - cap])
    deleted, _ = model.objects.filter(id__in=doomed).delete()
    return deleted
