"""Metering at the model-call layer: each chat-completions or embeddings call made for an
attributed user is recorded once, from the usage the provider reported, under a call id of our
own: complete answers by a response hook of the HTTP clients the models are built on, streams
(which ask for their usage with ``stream_options.include_usage``) as they are read.

A stream that ends before its usage arrives (cancelled, cut off) is recorded as an estimate and
marked so: the prompt at four characters a token, one completion token per content chunk received.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from asgiref.sync import sync_to_async

from apps.billing.metering import (
    DeferredRecords,
    LlmAttribution,
    LlmCallRecord,
    LlmCallUsage,
    LlmPurpose,
    current_attribution,
    llm_call_in_flight,
    llm_usage_defer_to,
    llm_usage_record,
    usage_from_report,
)

logger = logging.getLogger(__name__)

# Work charged as chat whose calls run on the sub-agent model are the sub-agents' steps.
_SUBAGENT_OF = frozenset({LlmPurpose.CHAT, LlmPurpose.FLOATING})
_CHARS_PER_TOKEN = 4


class MeteredCall:
    """One model call's usage, observed from its response or stream, recorded once by ``settle``."""

    def __init__(self, *, attribution: LlmAttribution, model: str, payload: dict[str, Any]) -> None:
        self.attribution = attribution
        self.model = model
        self.call_id = uuid.uuid4().hex
        self.usage: LlmCallUsage | None = None
        self.content_chunks = 0
        self._payload = payload
        self._settled = False
        self._deferred: DeferredRecords | None = None  # the work that watches this streamed call

    def observe(self, chunk: Any) -> None:
        """One decoded stream chunk: the usage chunk, or one more chunk of the answer."""
        if type(chunk) is not dict:
            return
        usage = chunk.get("usage")
        if usage:
            self.usage = usage_from_report(usage)
        elif chunk.get("choices"):
            self.content_chunks += 1

    def watch(self) -> MeteredCall:
        """A streamed call: the work that defers its records settles it when it ends, if nothing did before."""
        self._deferred = llm_call_in_flight(self._record_unsettled)
        return self

    def _record_unsettled(self) -> LlmCallRecord | None:
        return None if self._settled else self._record()

    def _record(self) -> LlmCallRecord:
        self._settled = True
        usage, estimated = self.usage, False
        if usage is None:
            usage, estimated = self._estimate(), True
        return LlmCallRecord(self.call_id, self.attribution, self.model, usage, estimated)

    def settle(self) -> None:
        if self._settled:
            return
        record = self._record()
        if llm_usage_defer_to(self._deferred, record):
            return
        try:
            llm_usage_record(**record._asdict())
        except Exception:  # the answer must not fail for its bookkeeping; the operator sees it in the log
            logger.exception("metering: could not record model call %s", self.call_id)

    async def settle_async(self) -> None:
        if self._settled:
            return
        record = self._record()
        if llm_usage_defer_to(
            self._deferred, record
        ):  # no trip to the database on the way (e.g. before the first token)
            return
        try:
            await sync_to_async(llm_usage_record)(**record._asdict())
        except Exception:
            logger.exception("metering: could not record model call %s", self.call_id)

    def _estimate(self) -> LlmCallUsage:
        prompt_chars = len(json.dumps(self._payload.get("messages") or self._payload.get("input") or "", default=str))
        return LlmCallUsage(prompt=prompt_chars // _CHARS_PER_TOKEN, completion=self.content_chunks, cached=0)


def metered_call(*, model: Any, payload: dict[str, Any], subagent: bool = False) -> MeteredCall | None:
    """A meter for the call about to be made, or ``None`` when the work is not attributed to a user."""
    attribution = current_attribution()
    if attribution is None:
        return None
    if subagent and attribution.purpose in _SUBAGENT_OF:
        attribution = attribution._replace(purpose=LlmPurpose.SUBAGENT)
    return MeteredCall(attribution=attribution, model=str(model or ""), payload=payload)


def embedding_call(*, model: Any, payload: dict[str, Any]) -> MeteredCall | None:
    attribution = current_attribution()
    if attribution is None:
        return None
    return MeteredCall(
        attribution=attribution._replace(purpose=LlmPurpose.EMBEDDING), model=str(model or ""), payload=payload
    )


async def settle_shielded(call: MeteredCall) -> None:
    """Record ``call`` even when the task awaiting it is being cancelled (a cancelled chat turn)."""
    with contextlib.suppress(BaseException):
        await asyncio.shield(asyncio.ensure_future(call.settle_async()))


def _response_call(response: httpx.Response, *, subagent: bool) -> MeteredCall | None:
    """A meter for a complete (not streamed) chat-completions or embeddings answer, else ``None``."""
    if current_attribution() is None or response.status_code != 200:
        return None
    if "text/event-stream" in response.headers.get("content-type", ""):
        return None  # a stream is metered as it is read (CoalescingChunkStream)
    path = response.request.url.path
    if not path.endswith(("/chat/completions", "/embeddings")):
        return None
    try:
        payload = json.loads(response.request.content or b"{}")
    except ValueError:
        payload = {}
    payload = payload if isinstance(payload, dict) else {}
    if path.endswith("/embeddings"):
        return embedding_call(model=payload.get("model"), payload=payload)
    return metered_call(model=payload.get("model"), payload=payload, subagent=subagent)


def _reported_usage(response: httpx.Response) -> LlmCallUsage | None:
    try:
        body = json.loads(response.content)
    except ValueError:
        return None
    return usage_from_report(body.get("usage")) if isinstance(body, dict) else None


def metering_hook(*, subagent: bool) -> Callable[[httpx.Response], None]:
    """An httpx response hook of a blocking client: records each complete answer's reported usage.

    At the HTTP layer, so every way the SDK is driven (``create``, ``with_raw_response``,
    ``parse`` for structured output) is metered the same.
    """

    def hook(response: httpx.Response) -> None:
        call = _response_call(response, subagent=subagent)
        if call is not None:
            response.read()
            call.usage = _reported_usage(response)
            call.settle()

    return hook


def async_metering_hook(*, subagent: bool) -> Callable[[httpx.Response], Awaitable[None]]:
    """``metering_hook`` for an asynchronous client."""

    async def hook(response: httpx.Response) -> None:
        call = _response_call(response, subagent=subagent)
        if call is not None:
            await response.aread()
            call.usage = _reported_usage(response)
            await settle_shielded(call)

    return hook
