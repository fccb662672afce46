"""The one place chat and embedding models are built, from settings (any OpenAI-compatible server)."""

from __future__ import annotations

import ssl
from enum import StrEnum
from functools import lru_cache
from typing import Any

import httpx2
import openai
from django.conf import settings
from langchain_openai import ChatOpenAI, OpenAIEmbeddings

from apps.core.errors import ApplicationError

from .error_codes import AssistantErrorCode


class ModelRole(StrEnum):
    SUPERVISOR = "supervisor"
    SUBAGENT = "subagent"


def llm_configuration_check() -> None:
    """Raise ``llm_not_configured`` (503) naming what to set, when no LLM endpoint is configured."""
    if not settings.OPENAI_API_KEY:
        raise ApplicationError(
            AssistantErrorCode.LLM_NOT_CONFIGURED,
            "The assistant has no language model configured. Set OPENAI_API_KEY (and OPENAI_BASE_URL "
            "for a server other than OpenAI, e.g. vLLM or Ollama; ASSISTANT_SUPERVISOR_MODEL, "
            "ASSISTANT_SUBAGENT_MODEL and ASSISTANT_EMBEDDING_MODEL choose the models).",
            status=503,
        )


def _client_options() -> dict:
    options: dict = {
        "api_key": settings.OPENAI_API_KEY,
        # An ``openai.Timeout`` (unhashable) makes langchain-openai build a fresh HTTP client per model
        # instead of sharing one process-wide: connections belong to one event loop (graphs are per loop).
        "timeout": openai.Timeout(settings.ASSISTANT_LLM_TIMEOUT),
        "max_retries": settings.ASSISTANT_LLM_MAX_RETRIES,
    }
    if settings.OPENAI_BASE_URL:
        options["base_url"] = settings.OPENAI_BASE_URL
    return options


@lru_cache(maxsize=1)
def tls_context() -> ssl.SSLContext:
    """One TLS context per process, shared by every HTTP client built here: a client that builds
    its own loads the CA bundle again (~40-90 ms, on the path to a socket request's first token)."""
    return httpx2.create_ssl_context()


@lru_cache(maxsize=4)
def _sync_http_client(timeout: float) -> openai.DefaultHttpxClient:
    # Blocking clients belong to no event loop, so one per process serves every thread.
    return openai.DefaultHttpxClient(timeout=timeout, verify=tls_context())


def async_http_client() -> openai.DefaultAsyncHttpxClient:
    """A fresh asynchronous client (its connections belong to the running loop) on the shared context."""
    return openai.DefaultAsyncHttpxClient(timeout=settings.ASSISTANT_LLM_TIMEOUT, verify=tls_context())


def model_name(role: ModelRole) -> str:
    return settings.ASSISTANT_SUPERVISOR_MODEL if role is ModelRole.SUPERVISOR else settings.ASSISTANT_SUBAGENT_MODEL


class DecodedChunkCompletions:
    """``chat.completions`` for langchain-openai, whose streams yield every chunk as its decoded JSON.

    The SDK builds a pydantic ``ChatCompletionChunk`` for every streamed token, and langchain-openai
    turns it straight back into a dict (``model_dump``), which it also accepts as is. That round trip
    cost more than everything else between the model and the device socket put together
    (bench/assistant_stream_layers.py). The request itself is the SDK's: same client, retries,
    timeout and API-key header. Anything but a plain stream (a complete answer, per-call extra
    options, raw responses, parsing helpers) goes to the SDK's own ``chat.completions``.
    """

    _PER_CALL_OPTIONS = frozenset({"extra_headers", "extra_query", "extra_body", "timeout"})

    def __init__(self, client: openai.AsyncOpenAI) -> None:
        self._client = client
        self._completions = client.chat.completions

    async def create(self, **payload: Any) -> Any:
        if not payload.get("stream") or self._PER_CALL_OPTIONS & payload.keys():
            return await self._completions.create(**payload)
        return await self._client.post(
            "/chat/completions",
            body=payload,
            cast_to=object,  # the decoded JSON, untouched
            stream=True,
            stream_cls=openai.AsyncStream[object],
            options={"security": {"bearer_auth": True}},  # as the SDK's create: the API key goes along
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._completions, name)


def chat_model(role: ModelRole) -> ChatOpenAI:
    """A chat-completions model (never the Responses API, which other OpenAI-compatible servers lack)."""
    llm_configuration_check()
    model = ChatOpenAI(model=model_name(role), use_responses_api=False, **_client_options())
    return model.model_copy(update={"async_client": DecodedChunkCompletions(model.root_async_client)})


def embeddings_model(*, http_async_client: openai.DefaultAsyncHttpxClient | None = None) -> OpenAIEmbeddings:
    llm_configuration_check()
    return OpenAIEmbeddings(
        model=settings.ASSISTANT_EMBEDDING_MODEL,
        # Send plain strings: token-id input needs tiktoken's downloaded tables and only OpenAI accepts it.
        check_embedding_ctx_length=False,
        http_client=_sync_http_client(settings.ASSISTANT_LLM_TIMEOUT),
        http_async_client=http_async_client,
        **_client_options(),
    )
