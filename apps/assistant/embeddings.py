"""Text embeddings through the configured OpenAI-compatible endpoint, of the size the vector columns hold."""

from __future__ import annotations

import logging

import openai

from apps.core.errors import ApplicationError
from apps.core.vectors import EMBEDDING_DIMENSIONS

from .error_codes import AssistantErrorCode
from .llm import async_http_client, embeddings_model, llm_configuration_check

logger = logging.getLogger(__name__)


async def text_embed(*, text: str) -> list[float]:
    """The embedding of ``text``; ``embedding_failed`` (502) if the endpoint fails or answers oddly."""
    # Our own HTTP client, closed right here: a client left to the garbage collector tries to close
    # its connections on an event loop that may be gone (a REST request's short-lived loop).
    llm_configuration_check()
    http_client = async_http_client()
    try:
        vector = await embeddings_model(http_async_client=http_client).aembed_query(text)
    except (openai.OpenAIError, ValueError, KeyError, TypeError) as exc:
        logger.warning("embedding request failed: %s", type(exc).__name__)
        raise ApplicationError(
            AssistantErrorCode.EMBEDDING_FAILED, "The embedding service failed; try again later.", status=502
        ) from exc
    finally:
        await http_client.aclose()
    if len(vector) != EMBEDDING_DIMENSIONS:
        raise ApplicationError(
            AssistantErrorCode.EMBEDDING_FAILED,
            f"The embedding model returned {len(vector)} dimensions instead of "
            f"{EMBEDDING_DIMENSIONS}; check ASSISTANT_EMBEDDING_MODEL.",
            status=502,
        )
    return [float(v) for v in vector]
