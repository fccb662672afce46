"""Fixtures for assistant tests: the scripted OpenAI-compatible server, and the devices app's real
ASGI server with reference clients (the device side of every end-to-end test)."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from apps.assistant import memory_bridge
from apps.assistant.testing.scripted_openai import RecordedRequest, Reply, ScriptedOpenAI, text
from apps.devices.tests.conftest import device_server, devices, fast_device_settings  # noqa: F401

UUID_ID = re.compile(r"id: ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")


@pytest.fixture(autouse=True)
def _episodes_written() -> Iterator[None]:
    """A socket turn's episode is written after its ``stream_end``, in a database thread of the
    server: no test ends (and has its tables flushed) while one is still being written."""
    yield
    deadline = time.monotonic() + 15
    while memory_bridge._writing and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.fixture(scope="session")
def _scripted_server():
    with ScriptedOpenAI() as server:
        yield server


@pytest.fixture
def llm(_scripted_server, settings) -> Iterator[ScriptedOpenAI]:
    """The scripted model, configured as the assistant's endpoint; empty script and records per test."""
    _scripted_server.reset()
    settings.OPENAI_API_KEY = "sk-scripted"
    settings.OPENAI_BASE_URL = _scripted_server.base_url
    settings.ASSISTANT_TOOL_TIMEOUT = 2.0
    yield _scripted_server
    _scripted_server.reset()


def ids_in(content: str) -> list[str]:
    return UUID_ID.findall(content)


def relay_tool_result(prefix: str = "") -> Any:
    """A sub-agent reply repeating what its last tool returned (so the supervisor sees real rows)."""
    return lambda body: text(prefix + RecordedRequest("", body).last_tool_text)


def answer_with_tags(entity: str) -> Any:
    """A supervisor reply that tags every id the sub-agent reported."""

    def reply(body: dict) -> Reply:
        ids = ids_in(RecordedRequest("", body).last_tool_text)
        return text(f"Here they are:\n<{entity}>[{','.join(ids)}]</{entity}>\nAnything else?", chunk_size=7)

    return reply


async def request(client: Any, frame: dict[str, Any], *, cancel_after: str | None = None) -> list[dict[str, Any]]:
    """Send a request frame; return every frame answering it up to ``stream_end``.

    (The reference client's own ``request()`` stops at an ``error`` frame; the assistant sends
    ``error`` and then ``stream_end``, and these tests check both.) ``cancel_after`` sends a
    ``cancel`` frame as soon as a frame of that type arrives.
    """
    request_id = frame.setdefault("request_id", uuid.uuid4().hex)
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    client._streams[request_id] = queue
    frames: list[dict[str, Any]] = []
    try:
        await client.send(frame)
        while True:
            reply = await asyncio.wait_for(queue.get(), 15)
            if reply["type"] == "closed":
                return frames
            frames.append(reply)
            if reply["type"] == cancel_after:
                await client.send({"type": "cancel", "request_id": request_id})
            if reply["type"] == "stream_end":
                return frames
    finally:
        client._streams.pop(request_id, None)


def home(client: Any, message: str, **extra: Any):
    return request(client, {"type": "home_request", "message": message, **extra})


def floating(client: Any, message: str, scope: dict[str, Any], **extra: Any):
    return request(client, {"type": "floating_request", "message": message, "scope": scope, **extra})


def types(frames: list[dict[str, Any]]) -> list[str]:
    return [f["type"] for f in frames]


def streamed_text(frames: list[dict[str, Any]]) -> str:
    return "".join(f["chunk"] for f in frames if f["type"] == "stream_text")
