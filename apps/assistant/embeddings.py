"""Text embeddings through the configured OpenAI-compatible endpoint, of the size the vector columns hold."""

from __future__ import annotations

import logging
from typing import Any

import openai

from apps.billing.budgets import llm_budgeted_async
from apps.billing.metering import LlmPurpose
from apps.core.errors import ApplicationError
from apps.core.vectors import EMBEDDING_DIMENSIONS

from .error_codes import AssistantErrorCode
from .llm import loop_embeddings_model

logger = logging.getLogger(__name__)


async def text_embed(*, text: str) -> list[float]:
    """The embedding of ``text``; ``embedding_failed`` (502) if the endpoint fails or answers oddly."""
    model = await loop_embeddings_model()
    try:
        vector = await model.aembed_query(text)
    except (openai.OpenAIError, ValueError, KeyError, TypeError) as exc:
        logger.warning("embedding request failed: %s", type(exc).__name__)
        raise ApplicationError(
            AssistantErrorCode.EMBEDDING_FAILED, "The embedding service failed; try again later.", status=502
        ) from exc
    if len(vector) != EMBEDDING_DIMENSIONS:
        raise ApplicationError(
            AssistantErrorCode.EMBEDDING_FAILED,
            f"The embedding model returned {len(vector)} dimensions instead of "
            f"{EMBEDDING_DIMENSIONS}; check ASSISTANT_EMBEDDING_MODEL.",
            status=502,
        )
    return [float(v) for v in vector]


async def user_text_embed(*, user_id: Any, text: str) -> list[float]:
    """``text_embed`` for a user's own request: admitted by, and charged to, their token budget."""
    async with llm_budgeted_async(user_id=user_id, purpose=LlmPurpose.EMBEDDING):
        return await text_embed(text=text)
