"""LangSmith's bookkeeping around each agent middleware hook, kept on the event loop while tracing is off.

langchain's agents wrap every middleware's ``awrap_model_call`` and ``awrap_tool_call`` in LangSmith's
``traceable``, which sets up and ends a run around each call in a worker thread (two thread hops per
hook, about eight hooks per model call), traced or not. Untraced, that bookkeeping does no I/O, so
``langsmith_hooks_inline_install`` has LangSmith run it inline (its public runtime override); with
tracing on, LangSmith's own threads are used as before.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable
from typing import Any

import langsmith
from langsmith.utils import tracing_is_enabled

DefaultToThread = Callable[..., Awaitable[Any]]


async def untraced_inline(
    default_to_thread: DefaultToThread, ctx: contextvars.Context, func: Callable[..., Any], /, *args: Any, **kwargs: Any
) -> Any:
    """LangSmith's ``aio_to_thread``: ``func`` run at once inside ``ctx`` when nothing is traced."""
    if tracing_is_enabled():
        return await default_to_thread(ctx, func, *args, **kwargs)
    return ctx.run(func, *args, **kwargs)


def langsmith_hooks_inline_install() -> None:
    langsmith.set_runtime_overrides(aio_to_thread=untraced_inline)
