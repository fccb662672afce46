"""A streamed chat completion's server-sent events, split and decoded a whole read at a time.

The SDK's stream decodes every event line by line in Python (a regular expression per read, a
``str`` per line, ``json.loads`` per event): with one event per token that was most of the
stack's cost while an answer streams. ``ServerSentEvents`` splits each read on blank lines with
bytes operations and hands over each event's data as it arrived; ``DecodedEventStream`` is the
SDK's stream class (same response, errors, drain and close) yielding each data field as its
decoded JSON.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from typing import Any, NamedTuple

import anyio
import httpx2
import openai
import orjson

_EVENT_END = b"\n\n"
_DATA_PREFIX = b"data: "


class ServerSentEvent(NamedTuple):
    """One dispatched event: its ``event`` field (None when absent) and its data lines joined."""

    event: str | None
    data: bytes


class ServerSentEvents:
    """Splits a byte stream into events by the server-sent events rules: lines end with LF, CRLF
    or CR; a blank line dispatches the fields seen since the last one; ``data`` lines join with
    LF; comments, ``id`` and ``retry`` are dropped (a chat completion carries none we use); an
    event without data is not dispatched."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []  # an event not yet ended, as it arrived
        self._carriage_return = False  # the last read ended in CR: LF may follow in the next one

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        if self._carriage_return:
            chunk = b"\r" + chunk
        if b"\r" in chunk:
            self._carriage_return = chunk.endswith(b"\r")
            if self._carriage_return:
                chunk = chunk[:-1]
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        parts = self._parts
        if _EVENT_END not in chunk and not (parts and parts[-1].endswith(b"\n") and chunk.startswith(b"\n")):
            if chunk:
                parts.append(chunk)  # no event ends here: joined once when one does
            return []
        if parts:
            parts.append(chunk)
            chunk = b"".join(parts)
        *blocks, rest = chunk.split(_EVENT_END)
        self._parts = [rest] if rest else []
        return [event for block in blocks if (event := _event(block)) is not None]

    def finish(self) -> list[ServerSentEvent]:
        """The stream ended: an event whose blank line never came is not dispatched (as the SDK)."""
        self._parts = []
        self._carriage_return = False
        return []


def _event(block: bytes) -> ServerSentEvent | None:
    if block.startswith(_DATA_PREFIX) and b"\n" not in block:
        return ServerSentEvent(None, block[len(_DATA_PREFIX) :])  # the usual shape: one data line
    name: str | None = None
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        field, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if field == b"data":
            data.append(value)
        elif field == b"event":
            name = value.decode("utf-8", "replace")
    if not data:
        return None
    return ServerSentEvent(name, b"\n".join(data))


def event_json(data: bytes) -> Any:
    """An event's data as JSON (an integer beyond 64 bits reads as a float, as the socket's frames
    do); a ``ValueError`` when it is not JSON, as the SDK's ``json.loads``."""
    return orjson.loads(data)


class DecodedEventStream(openai.AsyncStream[object]):
    """``openai.AsyncStream`` whose items are each event's decoded JSON, split by ``ServerSentEvents``.

    As the SDK's stream: ``[DONE]`` ends it (the rest of an HTTP/1.1 body is drained so the
    connection is reused), an ``error`` object in an event raises ``openai.APIError``, transport
    failures raise ``APITimeoutError`` / ``APIConnectionError``, and the response is closed
    however the iteration ends.
    """

    async def __stream__(self) -> AsyncIterator[Any]:
        response = self.response
        events = ServerSentEvents()
        try:
            async for chunk in self._reads():
                for event in events.feed(chunk):
                    if event.data.startswith(b"[DONE]"):
                        if response.http_version == "HTTP/1.1":
                            await _drain(response)
                        return
                    yield self._item(event)
        finally:
            await response.aclose()

    async def _reads(self) -> AsyncIterator[bytes]:
        response = self.response
        # An uncompressed body is read as the transport hands it over (as the SDK's drain reads it):
        # ``aiter_bytes`` adds two generators and a decoder per read, one read per event here.
        identity = response.headers.get("content-encoding", "identity").strip().lower() in ("", "identity")
        reads = response.stream if identity and isinstance(response.stream, httpx2.AsyncByteStream) else None
        try:
            async for chunk in reads if reads is not None else response.aiter_bytes():
                yield chunk
        except httpx2.TimeoutException as exc:
            raise openai.APITimeoutError(request=self.response.request) from exc
        except (httpx2.RequestError, ssl.SSLError, anyio.EndOfStream) as exc:
            raise openai.APIConnectionError(request=self.response.request) from exc

    def _item(self, event: ServerSentEvent) -> Any:
        data = event_json(event.data)
        if type(data) is dict and data.get("error"):
            error = data["error"]
            message = error.get("message") if isinstance(error, dict) else None
            raise openai.APIError(
                message=message if message and isinstance(message, str) else "An error occurred during streaming",
                request=self.response.request,
                body=error,
            )
        return data


async def _drain(response: httpx2.Response) -> None:
    """Read what follows ``[DONE]`` (at most 0.1 s), so an HTTP/1.1 connection can be reused."""
    try:
        with anyio.move_on_after(0.1):
            async for _ in response.aiter_raw():
                pass
    except (httpx2.RequestError, httpx2.StreamConsumed):
        pass  # the answer is complete: a failing close must not turn it into an error
