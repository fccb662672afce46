"""The one place chat and embedding models are built, from settings (any OpenAI-compatible server)."""

from __future__ import annotations

import array
import asyncio
import base64
import collections
import contextlib
import ssl
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from enum import StrEnum
from functools import lru_cache
from typing import Any

import httpx2
import openai
from django.conf import settings
from langchain_openai import ChatOpenAI, OpenAIEmbeddings

from apps.core.errors import ApplicationError
from apps.core.group_commit import loop_local

from .error_codes import AssistantErrorCode
from .event_stream import DecodedEventStream
from .metered_calls import MeteredCall, async_metering_hook, metered_call, metering_hook, settle_shielded


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


@lru_cache(maxsize=8)
def _sync_http_client(timeout: float, *, subagent: bool = False) -> openai.DefaultHttpxClient:
    # Blocking clients belong to no event loop, so one per process serves every thread.
    hooks = {"response": [metering_hook(subagent=subagent)]}
    return openai.DefaultHttpxClient(timeout=timeout, verify=tls_context(), event_hooks=hooks)


def async_http_client(*, subagent: bool = False) -> openai.DefaultAsyncHttpxClient:
    """A fresh asynchronous client (its connections belong to the running loop) on the shared context."""
    hooks = {"response": [async_metering_hook(subagent=subagent)]}
    return openai.DefaultAsyncHttpxClient(
        timeout=settings.ASSISTANT_LLM_TIMEOUT, verify=tls_context(), event_hooks=hooks
    )


def model_name(role: ModelRole) -> str:
    return settings.ASSISTANT_SUPERVISOR_MODEL if role is ModelRole.SUPERVISOR else settings.ASSISTANT_SUBAGENT_MODEL


class DecodedChunkCompletions:
    """``chat.completions`` for langchain-openai, whose streams yield every chunk as its decoded JSON.

    The SDK builds a pydantic ``ChatCompletionChunk`` for every streamed token, and langchain-openai
    turns it straight back into a dict (``model_dump``), which it also accepts as is. That round trip
    cost more than everything else between the model and the device socket put together
    (bench/assistant_stream_layers.py); the SDK's line-by-line event decoding was most of what
    remained (``DecodedEventStream``). The request itself is the SDK's: same client, retries,
    timeout and API-key header. Anything but a plain stream (a complete answer, per-call extra
    options, raw responses, parsing helpers) goes to the SDK's own ``chat.completions``.
    """

    _PER_CALL_OPTIONS = frozenset({"extra_headers", "extra_query", "extra_body", "timeout"})

    def __init__(self, client: openai.AsyncOpenAI, *, subagent: bool = False) -> None:
        self._client = client
        self._completions = client.chat.completions
        self._subagent = subagent

    async def create(self, **payload: Any) -> Any:
        if not payload.get("stream") or self._PER_CALL_OPTIONS & payload.keys():
            return await self._completions.create(**payload)  # a complete answer: metered by the client's hook
        call = metered_call(model=payload.get("model"), payload=payload, subagent=self._subagent)
        if call is not None:  # the provider reports the stream's usage in one last chunk
            call.watch()
            payload = {**payload, "stream_options": {**(payload.get("stream_options") or {}), "include_usage": True}}
        stream = await self._client.post(
            "/chat/completions",
            body=payload,
            cast_to=object,  # the decoded JSON, untouched
            stream=True,
            stream_cls=DecodedEventStream,
            options={"security": {"bearer_auth": True}},  # as the SDK's create: the API key goes along
        )
        return CoalescingChunkStream(stream, meter=call)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._completions, name)


class DecodedEmbeddings:
    """``embeddings`` for langchain-openai, answering the decoded JSON with each vector as floats.

    The SDK builds a pydantic model of the answer, one ``construct_type`` call per number when a
    server answers the vector as JSON numbers rather than the base64 it asks for (the scripted
    model; some OpenAI-compatible servers): for 1536 numbers that was most of a chat turn's time
    before its model call. As the SDK: base64 unless the caller names a format, decoded as
    little-endian 32-bit floats; the request, retries, key and metering hook are the SDK's client's.
    """

    _PER_CALL_OPTIONS = DecodedChunkCompletions._PER_CALL_OPTIONS

    def __init__(self, client: openai.AsyncOpenAI) -> None:
        self._client = client
        self._embeddings = client.embeddings

    async def create(self, **payload: Any) -> Any:
        if self._PER_CALL_OPTIONS & payload.keys():
            return await self._embeddings.create(**payload)
        answer = await self._client.post(
            "/embeddings",
            body={**payload, "encoding_format": payload.get("encoding_format", "base64")},
            cast_to=object,
            options={"security": {"bearer_auth": True}},
        )
        if not isinstance(answer, dict) or not isinstance(answer.get("data"), list):
            raise ValueError("the embeddings answer has no data list")
        for item in answer["data"]:
            if isinstance(item, dict) and isinstance(item.get("embedding"), str):
                item["embedding"] = array.array("f", base64.b64decode(item["embedding"])).tolist()
        return answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._embeddings, name)


READER_SLICE = 0.002
# Loop turns the first chunk with something in it (not the role's empty delta) is given to reach the
# socket before the reader reads on: it crosses langchain-openai, LangGraph's stream and the socket's
# send, a turn each (with one turn, a fast model's first text waited two READER_SLICEs of reading).
# Later chunks merge behind the busy consumer.
FIRST_HANDOVER_TURNS = 4


class CoalescingChunkStream:
    """A chat-completions stream whose text chunks that arrived while the consumer was busy are
    merged into one; a chunk that finds the consumer waiting goes on alone, at once.

    Everything downstream (langchain-openai, LangGraph, the sanitizer, one socket frame) costs the
    same per chunk whatever its length, so a model that writes faster than that pipeline passes
    several tokens per trip instead of queueing them one by one; a slow model loses nothing to it.
    A reader task drains the HTTP stream into a buffer; only plain text deltas of the same choice
    are merged (never tool-call pieces, a role change, a finish or usage).

    A ``meter`` sees every chunk as it is read and records the call when the stream ends, however
    it ends.
    """

    def __init__(self, stream: Any, *, meter: MeteredCall | None = None) -> None:
        self._stream = stream
        self._meter = meter
        self._buffer: collections.deque[Any] = collections.deque()
        self._arrived = asyncio.Event()
        self._finished = False
        self._error: BaseException | None = None

    async def __aenter__(self) -> CoalescingChunkStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._stream.close()
        # A consumer cancelled mid-stream closes the stream but may leave its iterator to the garbage
        # collector: the call is recorded now, from what was read (settling twice records once).
        if self._meter is not None:
            await settle_shielded(self._meter)

    async def _read(self) -> None:
        try:
            loop = asyncio.get_running_loop()
            resumed = loop.time()
            meter = self._meter
            first = True
            async for chunk in self._stream:
                self._buffer.append(chunk)
                if meter is not None:
                    meter.observe(chunk)
                waiting = not self._arrived.is_set()
                self._arrived.set()
                # Decoding chunks already read from the socket never suspends, so a fast model would
                # hold the loop until its last token: hand over at once to a waiting consumer, and
                # at least every READER_SLICE seconds to the consumer and what it feeds.
                if waiting or loop.time() - resumed > READER_SLICE:
                    for _ in range(FIRST_HANDOVER_TURNS if first else 1):
                        await asyncio.sleep(0)
                    first = first and _text_delta(chunk) == ""  # the role's empty delta comes before the text
                    resumed = loop.time()
        except Exception as exc:  # handed to the consumer, after the chunks that came before it
            self._error = exc
        finally:
            self._finished = True
            self._arrived.set()

    async def __aiter__(self) -> AsyncIterator[Any]:
        reader = asyncio.ensure_future(self._read())
        try:
            while True:
                if not self._buffer:
                    if self._finished:
                        if self._error is not None:
                            raise self._error
                        return
                    self._arrived.clear()
                    await self._arrived.wait()
                    continue
                chunk = self._buffer.popleft()
                while (
                    self._buffer
                    and (text := _text_delta(chunk)) is not None
                    and (more := _text_delta(self._buffer[0])) is not None
                ):
                    self._buffer.popleft()
                    chunk = _with_text(chunk, text + more)
                yield chunk
        finally:
            if not reader.done():
                reader.cancel()
                with contextlib.suppress(BaseException):
                    await reader
            if self._meter is not None:
                await settle_shielded(self._meter)


def _text_delta(chunk: Any) -> str | None:
    """The text of a chunk that carries nothing but text for choice 0, else None."""
    if not isinstance(chunk, dict) or chunk.get("usage") or len(chunk.get("choices") or ()) != 1:
        return None
    choice = chunk["choices"][0]
    if choice.get("index", 0) != 0 or choice.get("finish_reason") or choice.get("logprobs"):
        return None
    delta = choice.get("delta") or {}
    content = delta.get("content")
    if not isinstance(content, str) or any(value for key, value in delta.items() if key not in ("content", "role")):
        return None
    return content


def _with_text(chunk: dict, content: str) -> dict:
    choice = chunk["choices"][0]
    return {**chunk, "choices": [{**choice, "delta": {**choice["delta"], "content": content}}]}


def chat_model(role: ModelRole) -> ChatOpenAI:
    """A chat-completions model (never the Responses API, which other OpenAI-compatible servers lack)."""
    llm_configuration_check()
    subagent = role is ModelRole.SUBAGENT
    model = ChatOpenAI(
        model=model_name(role),
        use_responses_api=False,
        # Ours, for the metering hook; a fresh asynchronous one per model, as langchain-openai would build.
        http_client=_sync_http_client(settings.ASSISTANT_LLM_TIMEOUT, subagent=subagent),
        http_async_client=async_http_client(subagent=subagent),
        **_client_options(),
    )
    async_client = DecodedChunkCompletions(model.root_async_client, subagent=subagent)
    return model.model_copy(update={"async_client": async_client})


def embeddings_model(*, http_async_client: openai.DefaultAsyncHttpxClient | None = None) -> OpenAIEmbeddings:
    llm_configuration_check()
    model = OpenAIEmbeddings(
        model=settings.ASSISTANT_EMBEDDING_MODEL,
        # Send plain strings: token-id input needs tiktoken's downloaded tables and only OpenAI accepts it.
        check_embedding_ctx_length=False,
        http_client=_sync_http_client(settings.ASSISTANT_LLM_TIMEOUT),
        http_async_client=http_async_client,
        **_client_options(),
    )
    return model.model_copy(update={"async_client": DecodedEmbeddings(model.async_client._client)})


# One embeddings model (and HTTP client, and its open connection) per event loop: a query embedding
# on the socket process's long-lived loop no longer opens a client and a connection per turn. The
# client is closed on its own loop as the loop shuts down (asyncio.run, asgiref's loops and uvicorn
# finalise async generators before closing), never by the garbage collector on a loop that is gone.
_loop_embeddings: Callable[[], dict[tuple, tuple[OpenAIEmbeddings, Any]]] = loop_local(dict)


async def loop_embeddings_model() -> OpenAIEmbeddings:
    """``embeddings_model`` on a client of the running event loop's own, made once per loop and settings."""
    llm_configuration_check()
    key = (
        settings.ASSISTANT_EMBEDDING_MODEL,
        settings.OPENAI_BASE_URL,
        settings.OPENAI_API_KEY,
        settings.ASSISTANT_LLM_TIMEOUT,
        settings.ASSISTANT_LLM_MAX_RETRIES,
    )
    per_loop = _loop_embeddings()
    held = per_loop.get(key)
    if held is None:
        client = async_http_client()
        closer = _closed_at_loop_shutdown(client)
        await closer.asend(None)  # registered with the loop: finalised by its shutdown_asyncgens()
        held = per_loop[key] = (embeddings_model(http_async_client=client), closer)
    return held[0]


async def _closed_at_loop_shutdown(client: openai.DefaultAsyncHttpxClient) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        with contextlib.suppress(Exception):  # a loop shutting down: nothing left to tell
            await client.aclose()
