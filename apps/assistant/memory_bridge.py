"""Memory around an agent call: the prompt fragment before it, the episode after it.

Memory failures never fail a chat: without an embedding the associative search is skipped,
and a failed write is logged. After the turn one insert happens (``apps.memory.learning.episode_capture``),
in a task of its own (``episode_remember_start``) so the socket's ``stream_end`` need not wait for
it; the summary, its embedding, the learned facts and the patterns are written by Celery tasks the
user never waits for.
"""

from __future__ import annotations

import asyncio
import logging

from asgiref.sync import sync_to_async

from apps.core.errors import ApplicationError
from apps.memory.learning import episode_capture
from apps.memory.selectors import amemory_context

from . import prompts
from .embeddings import text_embed

logger = logging.getLogger(__name__)


async def memory_prompt_fragment(*, user_id, message: str) -> str:
    """Core memory, top-k associative memories near ``message``, recent episodes, patterns > 0.6."""
    try:
        embedding: list[float] | None = await text_embed(text=message)
    except ApplicationError as exc:
        logger.info("no query embedding for memory (%s); associative memory skipped", exc.code)
        embedding = None
    try:
        context = await amemory_context(user_id=user_id, query_embedding=embedding, top_k=5, recent_episodes=5)
    except ApplicationError as exc:
        logger.warning("memory enrichment failed: %s", exc.code)
        return ""
    return prompts.memory_fragment(context)


async def remember_episode(*, user_id, session_id: str, message: str, answer: str) -> None:
    """Store the exchange as a pending episode; a Celery task summarises it and learns from it."""
    try:
        await sync_to_async(episode_capture)(user_id=user_id, session_id=session_id, message=message, answer=answer)
    except Exception:  # the answer is already out: a memory write must never fail the turn
        logger.warning("episode not stored", exc_info=True)


# The episode writes still running: held here so a write outlives the request that started it
# (a socket closing cancels its request's task) and is not collected half-way.
_writing: set[asyncio.Task[None]] = set()


def episode_remember_start(*, user_id, session_id: str, message: str, answer: str) -> asyncio.Task[None]:
    """``remember_episode`` started as a task of its own; await it (shielded) to know it is stored.
    The model never sees a pending episode (only its summary, written later by Celery), so the
    user's next turn does not wait for it."""
    task = asyncio.ensure_future(
        remember_episode(user_id=user_id, session_id=session_id, message=message, answer=answer)
    )
    _writing.add(task)
    task.add_done_callback(_writing.discard)
    return task
