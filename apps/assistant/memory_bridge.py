"""Memory around an agent call: the prompt fragment before it, the episode after it.

Memory failures never fail a chat: without an embedding the associative search is skipped,
and a failed write is logged.
"""

from __future__ import annotations

import logging

from asgiref.sync import sync_to_async

from apps.core.errors import ApplicationError
from apps.memory.selectors import amemory_context
from apps.memory.services import episode_record

from .embeddings import text_embed

logger = logging.getLogger(__name__)

EPISODE_MESSAGE_CHARS = 500
EPISODE_ANSWER_CHARS = 1500


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
    return context.as_prompt_fragment()


def episode_summary(*, message: str, answer: str) -> str:
    return f"User: {message[:EPISODE_MESSAGE_CHARS]}\nAssistant: {answer[:EPISODE_ANSWER_CHARS]}"


async def remember_episode(*, user_id, session_id: str, message: str, answer: str) -> None:
    """Store the exchange as an episode with its embedding (without one if embedding fails)."""
    summary = episode_summary(message=message, answer=answer)
    try:
        embedding: list[float] | None = await text_embed(text=summary)
    except ApplicationError:
        embedding = None
    try:
        await sync_to_async(episode_record)(
            user_id=user_id, session_id=session_id, summary=summary, embedding=embedding
        )
    except ApplicationError as exc:
        logger.warning("episode not stored: %s", exc.code)
