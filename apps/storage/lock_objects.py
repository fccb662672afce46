"""Per-user transaction locks, so concurrent writes can't both pass a quota check and overshoot."""

from __future__ import annotations

import uuid

from django.db import connection

# Distinct namespaces so the storage and backup quotas don't serialise each other.
_NAMESPACES = {"storage": 0x5354, "backup": 0x424B}


def user_quota_lock(*, user_id: uuid.UUID, scope: str) -> None:
    """Take a transaction-scoped advisory lock for (scope, user); released at commit/rollback."""
    key = uuid.UUID(str(user_id)).int & 0x7FFFFFFF
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_NAMESPACES[scope], key])
