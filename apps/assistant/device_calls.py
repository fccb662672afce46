"""The request a tool runs in, and the one door from tools to the user's device.

A request (a socket ``home_request``/``floating_request`` or a REST chat) opens a
:class:`ChatRequestContext` in a context variable; the tools call :func:`execute_on_client`,
which runs the call on the user's device through ``apps.devices.services.call_device`` and
records every insert, update and delete for ``stream_end``. Device failures become a
readable sentence for the model (so it can explain) and a fault the stream reports.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from apps.devices.errors import (
    DeviceCallError,
    DeviceDisconnectedError,
    DeviceOfflineError,
    DeviceTimeoutError,
    DeviceToolError,
)
from apps.devices.services import call_device

logger = logging.getLogger(__name__)

MUTATING_ACTIONS = frozenset({"insert", "update", "delete"})


@dataclass
class ChatRequestContext:
    user_id: Any
    request_id: str
    device_id: str | None = None  # None: the user's most recently seen online device
    mutations: list[dict[str, Any]] = field(default_factory=list)
    faults: list[DeviceCallError] = field(default_factory=list)
    subagents_used: list[str] = field(default_factory=list)


_current: ContextVar[ChatRequestContext | None] = ContextVar("assistant_chat_request", default=None)


@contextlib.contextmanager
def chat_request(ctx: ChatRequestContext) -> Iterator[ChatRequestContext]:
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


def current_request() -> ChatRequestContext:
    ctx = _current.get()
    if ctx is None:
        raise RuntimeError("assistant tools run only inside chat_request()")
    return ctx


class DeviceUnavailable(Exception):
    """A device failure turned into the sentence the tool returns to the model."""

    def __init__(self, sentence: str) -> None:
        super().__init__(sentence)
        self.sentence = sentence


def _sentence_for(exc: DeviceCallError) -> str:
    if isinstance(exc, DeviceOfflineError):
        return "The user's desktop app is offline, so their data cannot be read or changed right now."
    if isinstance(exc, DeviceTimeoutError):
        return "The user's desktop app did not answer in time; the operation may not have happened."
    if isinstance(exc, DeviceDisconnectedError):
        return "The user's desktop app disconnected before answering; the operation may not have happened."
    if isinstance(exc, DeviceToolError):
        return f"The user's desktop app reported an error: {exc.message}"
    return f"The user's desktop app could not be reached ({exc.message})."


def delete_confirmed(result: dict[str, Any]) -> bool:
    """Whether the device answered a delete with ``deleted: true`` (the protocol's confirmation)."""
    return result.get("deleted") is True


def mutation_record(action: str, table: str, data: dict[str, Any] | None, result: dict[str, Any]) -> dict[str, Any]:
    """One ``stream_end`` mutation: ``data`` is what the request sent (as the earlier backend did),
    ``row`` the row the device returned, when it returned one."""
    record: dict[str, Any] = {"action": action, "table": table, "data": dict(data or {})}
    row = result.get("row")
    if isinstance(row, dict):
        record["row"] = row
    return record


async def execute_on_client(
    action: str,
    table: str | None = None,
    data: dict[str, Any] | None = None,
    filters: dict[str, Any] | None = None,
    vector: list[float] | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """Run one tool call on the requesting user's device; raise DeviceUnavailable on failure."""
    ctx = current_request()
    if filters is not None:
        filters = {key: value for key, value in filters.items() if value not in (None, "")} or None
    try:
        result = await call_device(
            user_id=ctx.user_id,
            action=action,
            table=table,
            data=data,
            filters=filters,
            vector=vector,
            limit=limit,
            device_id=ctx.device_id,
            timeout=settings.ASSISTANT_TOOL_TIMEOUT,
        )
    except DeviceCallError as exc:
        logger.info("tool call %s %s failed: %s", action, table, exc.code)
        ctx.faults.append(exc)
        raise DeviceUnavailable(_sentence_for(exc)) from exc
    result = result or {}
    # A delete the device did not confirm (no such row) changed nothing the client must refresh.
    if action in MUTATING_ACTIONS and table and (action != "delete" or delete_confirmed(result)):
        ctx.mutations.append(mutation_record(action, table, data, result))
    return result
