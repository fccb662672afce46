"""A chat request survives its socket, end to end: reference client ⇄ server ⇄ scripted model.

The device drops mid-request; the model goes on answering; the device comes back on a new socket,
sends ``resume`` and gets every frame after the last one it held, then the live rest; the tool call
the model makes after the device is back runs on the new socket and lands in ``stream_end``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from apps.assistant.testing.scripted_openai import Reply, ToolCall, tool_call
from apps.devices.tests.conftest import device_row, wait_until

from .conftest import answer_with_tags, relay_tool_result, streamed_text, types

pytestmark = pytest.mark.django_db(transaction=True)


def held_until(gate: threading.Event, reply: Reply | Callable[[dict], Reply]) -> Callable[[dict], Reply]:
    """A scripted reply the model sends only once the test opens ``gate`` (the server's own thread
    waits, so the request is really in flight meanwhile)."""

    def spec(body: dict) -> Reply:
        if not gate.wait(15):
            raise TimeoutError("the test never opened the gate")
        return reply(body) if callable(reply) else reply

    return spec


async def frames_of(client, request_id: str, *, first: int = 0) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    while True:
        frame = await client.next_frame(15)
        if frame.get("request_id") != request_id:
            continue
        frames.append(frame)
        if frame["type"] == "stream_end" or (first and len(frames) >= first):
            return frames


async def test_a_chat_request_resumed_on_a_new_socket_streams_on_and_its_tool_call_reaches_it(devices, user, llm):
    # given a model that answers only after the device dropped, and calls the device's tools only
    # after the device is back
    dropped, back = threading.Event(), threading.Event()
    llm.script(
        held_until(
            dropped,
            Reply(
                text="Let me add that to your tasks. ",
                tool_calls=[ToolCall("task", {"description": "Create 'Write report'", "subagent_type": "task"})],
                chunk_size=3,
            ),
        ),
        held_until(back, tool_call("create_task", {"title": "Write report"})),
        relay_tool_result(),
        answer_with_tags("task"),
    )
    first = await devices(user, device_id="laptop")
    await first.send({"type": "home_request", "request_id": "chat1", "message": "add a task to write the report"})
    before = await frames_of(first, "chat1", first=1)

    # when the socket drops, the model answers meanwhile, and the device resumes on a new socket
    await first.close()

    async def offline() -> bool:
        row = await device_row(user, "laptop")
        return row is not None and not row.is_online

    await wait_until(offline)
    dropped.set()
    await wait_until(lambda: len(llm.chat_requests()) >= 2)  # the supervisor answered; its sub-agent asks
    second = await devices(user, device_id="laptop")
    await second.send({"type": "resume", "request_id": "chat1", "after_seq": before[-1]["seq"]})
    back.set()
    after = await frames_of(second, "chat1")

    # then the frames of both sockets are one stream numbered from 1, with no gap and no duplicate
    frames = before + after
    assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1))
    assert types(frames)[0] == "stream_start"
    assert types(frames)[-1] == "stream_end"
    text = streamed_text(frames)
    assert text.startswith("Let me add that to your tasks. ")
    # and the tool call ran on the new socket's device, and its row is tagged and in the mutations
    assert first.tool_calls == []
    assert [(c["action"], c["table"]) for c in second.tool_calls] == [("insert", "tasks")]
    row = second.store.execute({"action": "select", "table": "tasks"})["rows"][0]
    assert row["title"] == "Write report"
    assert f"<task>[{row['id']}]</task>" in text
    assert [(m["action"], m["row"]["id"]) for m in frames[-1]["mutations"]] == [("insert", row["id"])]
