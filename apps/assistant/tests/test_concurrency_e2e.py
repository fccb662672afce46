"""Several requests run at once on one socket, and a ``cancel`` stops one of them."""

from __future__ import annotations

import asyncio

import pytest

from apps.assistant.testing.scripted_openai import text, tool_call
from apps.devices.tests.conftest import wait_until

from .conftest import home, relay_tool_result, streamed_text, types

pytestmark = pytest.mark.django_db(transaction=True)


def was_cancelled(frames):
    """The stream ends with ``stream_end`` marked cancelled."""
    return frames[-1]["type"] == "stream_end" and frames[-1].get("cancelled") is True


def dispatch():
    return tool_call("task", {"description": "list the tasks", "subagent_type": "task"})


async def test_a_second_request_completes_while_the_first_waits_on_its_device(devices, user, llm):
    # given a first request whose tool call the device holds
    client = await devices(user)
    client.store.execute({"action": "insert", "table": "tasks", "data": {"title": "Held"}})
    release = asyncio.Event()

    async def held(call):
        await release.wait()
        return client.store.execute(call)

    client.tool_handler = held
    llm.script(dispatch(), tool_call("list_tasks", {}))
    first = asyncio.create_task(home(client, "list my tasks", request_id="first"))
    await wait_until(lambda: client.tool_calls)

    # when a second request runs to its end meanwhile
    llm.script(text("Second answer."))
    second = await home(client, "say hi", request_id="second")
    llm.script(relay_tool_result(), text("First answer."))
    release.set()
    first_frames = await first

    # then both streams are complete and each carries only its own request_id
    assert streamed_text(second) == "Second answer."
    assert streamed_text(first_frames) == "First answer."
    assert {f["request_id"] for f in second} == {"second"}
    assert {f["request_id"] for f in first_frames} == {"first"}
    assert not first.cancelled()


async def test_cancel_ends_the_request_with_a_cancelled_stream_end(devices, user, llm):
    # given a request stuck on a device call that will never be answered
    client = await devices(user)

    async def never(call):
        return None

    client.tool_handler = never
    llm.script(dispatch(), tool_call("list_tasks", {}))
    pending = asyncio.create_task(home(client, "list my tasks", request_id="to-cancel"))
    await wait_until(lambda: client.tool_calls)

    # when
    await client.send({"type": "cancel", "request_id": "to-cancel"})
    frames = await asyncio.wait_for(pending, 5)

    # then
    assert types(frames)[0] == "stream_start"
    assert frames[-1]["type"] == "stream_end"
    assert frames[-1]["request_id"] == "to-cancel"
    assert was_cancelled(frames)


async def test_cancel_mid_stream_stops_the_text(devices, user, llm):
    # given a slowly streamed answer
    client = await devices(user)
    llm.script(text("word " * 200, chunk_size=5, chunk_delay=0.01))

    # when the client cancels as soon as text arrives
    from .conftest import request

    frames = await request(
        client, {"type": "home_request", "message": "talk", "request_id": "c2"}, cancel_after="stream_text"
    )

    # then the stream ends early, marked cancelled
    assert frames[-1]["type"] == "stream_end"
    assert was_cancelled(frames)
    assert len(streamed_text(frames)) < len("word " * 200)
