"""Per-user transaction lock over the user's grants, so two callbacks can't both pass the provider gate."""

from __future__ import annotations

import uuid

from django.db import connection

_GRANTS_NAMESPACE = 0x434F  # "CO": distinct from storage's quota locks


def user_grants_lock(*, user_id: uuid.UUID) -> None:
    """Take a transaction-scoped advisory lock for the user's grants; released at commit/rollback."""
    key = uuid.UUID(str(user_id)).int & 0x7FFFFFFF
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_GRANTS_NAMESPACE, key])
