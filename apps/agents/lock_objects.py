"""Per-user transaction lock over a user's agent configs, so racing creates can't both pass a tier limit."""

from __future__ import annotations

import uuid

from django.db import connection

# Its own advisory-lock namespace ("AG"), distinct from storage's quota locks.
_AGENTS_NAMESPACE = 0x4147


def user_agents_lock(*, user_id: uuid.UUID) -> None:
    """Take a transaction-scoped advisory lock on the user's agent configs; released at commit/rollback."""
    key = uuid.UUID(str(user_id)).int & 0x7FFFFFFF
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_AGENTS_NAMESPACE, key])
