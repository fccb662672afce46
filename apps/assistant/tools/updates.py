"""The one skeleton of the four ``update_*`` tools: collect the changed fields, run the update on the
device, and answer with the updated row, "nothing to update" or "not found"."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ..device_calls import execute_on_client
from .common import result_row


def changed_fields(text: dict[str, str] | None = None, numbers: dict[str, int] | None = None) -> dict[str, Any]:
    """The fields the model set: non-empty text, numbers other than -1 (the tools' "unchanged")."""
    updates: dict[str, Any] = {key: value for key, value in (text or {}).items() if value}
    updates.update({key: value for key, value in (numbers or {}).items() if value != -1})
    return updates


async def update_row(
    *,
    table: str,
    noun: str,
    row_id: str,
    updates: dict[str, Any],
    summary: Callable[[dict[str, Any]], str],
    after: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
) -> str:
    """Apply ``updates`` to the ``table`` row ``row_id`` on the device; ``summary(row)`` describes success,
    ``after(row)`` runs once the row is updated (e.g. re-indexing a note)."""
    if not updates:
        return "Nothing to update: no field was given."
    result = await execute_on_client(action="update", table=table, data={"id": row_id, "updates": updates})
    row = result_row(result)
    if row is None:
        return f"No {noun} with id {row_id} was found; nothing was changed."
    if after is not None:
        await after(row)
    return summary(row)
