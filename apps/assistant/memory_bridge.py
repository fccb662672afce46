"""Memory around an agent call: the prompt fragment before it, the episode after it.

Before it, what needs no model request (core memory, recent episodes, patterns, and whether the
user has any associative memory) is read at once (``memory_recall_start``), beside the budget's
hold; the query's embedding, a model request, comes after the hold, and only for a user with
associative memories to search. Memory failures never fail a chat: without an embedding the
associative search is skipped, and a failed write is logged. After the turn one insert happens
(``apps.memory.learning.episode_capture``), in a task of its own (``episode_remember_start``) so the
socket's ``stream_end`` need not wait for it; the summary, its embedding, the learned facts and the
patterns are written by Celery tasks the user never waits for.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from apps.core.errors import ApplicationError
from apps.devices.socket_db import socket_db
from apps.memory.learning import episode_capture
from apps.memory.selectors import MemoryContext, associative_memory_search, memory_context_unsearched

from . import prompts
from .embeddings import text_embed

logger = logging.getLogger(__name__)

TOP_K = 5
RECENT_EPISODES = 5


def memory_recall_start(*, user_id) -> asyncio.Task[tuple[MemoryContext, bool]]:
    """Start reading the user's memory but the associative search (and whether there is anything to
    search): a database read, in the socket's database threads so it runs beside the budget's hold
    (which waits in the one thread-sensitive thread). Await it with ``memory_prompt_fragment``."""
    read = socket_db(memory_context_unsearched)
    return asyncio.ensure_future(read(user_id=user_id, recent_episodes=RECENT_EPISODES))


async def memory_prompt_fragment(*, user_id, message: str, recalled: asyncio.Future[tuple[MemoryContext, bool]]) -> str:
    """Core memory, top-k associative memories near ``message``, recent episodes, patterns > 0.6;
    ``recalled`` is ``memory_recall_start``'s read. Call it once the budget admitted the turn: the
    query's embedding is a model request (made only when there are associative memories to search)."""
    try:
        context, searchable = await recalled
        if searchable:
            context = await _searched(context, user_id=user_id, message=message)
    except ApplicationError as exc:
        logger.warning("memory enrichment failed: %s", exc.code)
        return ""
    return prompts.memory_fragment(context)


async def _searched(context: MemoryContext, *, user_id, message: str) -> MemoryContext:
    try:
        embedding = await text_embed(text=message)
    except ApplicationError as exc:
        logger.info("no query embedding for memory (%s); associative memory skipped", exc.code)
        return context
    hits = await socket_db(associative_memory_search)(user_id=user_id, query_embedding=embedding, top_k=TOP_K)
    return dataclasses.replace(context, associative=hits)


async def remember_episode(*, user_id, session_id: str, message: str, answer: str) -> None:
    """Store the exchange as a pending episode; a Celery task summarises it and learns from it."""
    try:
        # In the socket's database threads: in the one thread-sensitive thread this write (its lock,
        # insert, commit and the summary's queueing) held up the next turn's budget check behind it.
        await socket_db(episode_capture)(user_id=user_id, session_id=session_id, message=message, answer=answer)
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
