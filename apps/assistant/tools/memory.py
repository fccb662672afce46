"""The supervisors' own tool: ``update_core_memory``."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from langchain_core.tools import tool

from apps.core.errors import ApplicationError
from apps.memory.services import core_memory_set

from ..device_calls import current_request


@tool("update_core_memory")
async def update_core_memory(key: str, value: str) -> str:
    """Remember a lasting preference or fact about the user under a short key (e.g. timezone, work_hours)."""
    ctx = current_request()
    try:
        await sync_to_async(core_memory_set)(user_id=ctx.user_id, key=key, value=value)
    except ApplicationError as exc:
        return f"Could not remember that: {exc.message}"
    return f"Remembered {key}."
