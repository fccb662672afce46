"""Request and message frames routed to registered handlers: concurrency, cancel, errors, unregistered types."""

from __future__ import annotations

import asyncio

import pytest

from apps.core.errors import ApplicationError
from apps.devices.frames import HomeRequest
from apps.devices.realtime_redis import loop_redis
from apps.devices.streams import USER_KEY
from apps.devices.tests.conftest import SOCKET_DB

pytestmark = SOCKET_DB


async def collect(stream) -> list[dict]:
    return [frame async for frame in stream]


async def test_unregistered_request_type_answers_not_implemented(devices, user, frame_handlers):
    client = await devices(user)
    frames = await collect(client.home_request("hi", request_id="r1"))
    assert frames == [{"type": "error", "request_id": "r1", "code": "not_implemented", "message": frames[0]["message"]}]


async def test_handler_streams_and_gets_a_validated_frame_with_a_request_id(devices, user, frame_handlers):
    # given a handler that echoes through stream frames and calls the device it came from
    seen = []

    async def home(session, frame):
        seen.append(frame)
        await session.send({"type": "stream_start", "request_id": frame.request_id})
        result = await session.call(action="insert", table="tasks", data={"title": frame.message})
        await session.send({"type": "stream_text", "request_id": frame.request_id, "chunk": result["row"]["title"]})
        await session.send(
            {
                "type": "stream_end",
                "request_id": frame.request_id,
                "mutations": [{"action": "insert", "table": "tasks", "data": result["row"]}],
            }
        )

    frame_handlers.register_request_handler("home_request", home)
    client = await devices(user)

    # when the client sends a request without request_id
    frames = await collect(client.request({"type": "home_request", "message": "Write report"}))

    # then the handler got a model with a generated request_id, and the tool call ran on the device
    assert isinstance(seen[0], HomeRequest)
    assert seen[0].request_id
    assert [f["type"] for f in frames] == ["stream_start", "stream_text", "stream_end"]
    assert frames[1]["chunk"] == "Write report"
    assert frames[2]["mutations"][0]["data"]["title"] == "Write report"
    assert seen[0].request_id == frames[0]["request_id"]


async def test_requests_run_concurrently_and_never_block_the_receive_loop(devices, user, frame_handlers) -> None:
    # given a handler that waits until told to finish
    gates: dict[str, asyncio.Event] = {}

    async def home(session, frame):
        await gates.setdefault(frame.message, asyncio.Event()).wait()
        await session.send({"type": "stream_end", "request_id": frame.request_id})

    frame_handlers.register_request_handler("home_request", home)
    client = await devices(user)
    first = asyncio.ensure_future(collect(client.home_request("first", request_id="a")))
    await asyncio.sleep(0.1)

    # when a second request arrives while the first is still running, and the socket answers pings
    gates.setdefault("second", asyncio.Event()).set()
    second = await asyncio.wait_for(collect(client.home_request("second", request_id="b")), 5)
    await client.send({"type": "ping"})
    pong = await client.next_frame()

    # then the second finished first and the socket stayed responsive
    assert second == [{"type": "stream_end", "request_id": "b", "seq": 1, "mutations": []}]
    assert pong == {"type": "pong"}
    assert not first.done()
    gates["first"].set()
    assert (await first)[0]["request_id"] == "a"


async def test_cancel_frame_cancels_the_running_request(devices, user, frame_handlers):
    # given a handler that runs until cancelled and then sends a final frame
    cancelled = asyncio.Event()

    async def home(session, frame):
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            await session.send({"type": "stream_end", "request_id": frame.request_id})
            raise

    frame_handlers.register_request_handler("home_request", home)
    client = await devices(user)
    stream = asyncio.ensure_future(collect(client.home_request("long", request_id="c1")))
    await asyncio.sleep(0.1)

    # when
    await client.send({"type": "cancel", "request_id": "c1"})

    # then
    assert await asyncio.wait_for(stream, 5) == [{"type": "stream_end", "request_id": "c1", "seq": 1, "mutations": []}]


async def test_cancel_of_an_unknown_request_is_an_error_frame(devices, user):
    client = await devices(user)
    await client.send({"type": "cancel", "request_id": "nope"})
    frame = await client.next_frame()
    assert frame["code"] == "unknown_request"
    assert frame["request_id"] == "nope"


async def test_application_error_in_a_handler_becomes_an_error_frame(devices, user, frame_handlers):
    async def floating(session, frame):
        raise ApplicationError("feature_locked", "Upgrade to use this.", status=403)

    frame_handlers.register_request_handler("floating_request", floating)
    client = await devices(user)
    frames = await collect(client.floating_request("x", {"type": "tasks"}, request_id="f1"))
    assert frames == [
        {"type": "error", "request_id": "f1", "seq": 1, "code": "feature_locked", "message": "Upgrade to use this."}
    ]


async def test_unexpected_handler_failure_is_internal_error_and_socket_stays_open(devices, user, frame_handlers):
    async def broken(session, frame):
        raise RuntimeError("secret detail")

    frame_handlers.register_request_handler("agent_complete", broken)
    client = await devices(user)
    await client.send({"type": "agent_complete", "run_id": "run1", "files_read": 2, "errors": []})
    frame = await client.next_frame()
    await client.send({"type": "ping"})

    assert frame["code"] == "internal_error"
    assert "secret" not in frame["message"]
    assert await client.next_frame() == {"type": "pong"}


async def test_duplicate_running_request_id_is_refused(devices, user, frame_handlers):
    release = asyncio.Event()

    async def home(session, frame):
        await release.wait()

    frame_handlers.register_request_handler("home_request", home)
    client = await devices(user)
    await client.send({"type": "home_request", "request_id": "same", "message": "1"})
    await client.send({"type": "home_request", "request_id": "same", "message": "2"})
    frame = await client.next_frame()
    release.set()
    assert frame["code"] == "duplicate_request"


async def test_connect_handler_runs_after_hello(devices, user, frame_handlers):
    seen = asyncio.Event()
    sessions = []

    async def on_connect(session):
        sessions.append((session.user_id, session.device_id, session.agent_ids))
        seen.set()

    frame_handlers.register_connect_handler(on_connect)
    client = await devices(user, agent_ids=["a1"])
    await asyncio.wait_for(seen.wait(), 5)
    assert sessions == [(str(user.id), client.device_id, ["a1"])]


def test_registering_a_non_request_type_is_refused(frame_handlers):
    async def handler(session, frame):
        return None

    with pytest.raises(ValueError, match="not a registrable frame type"):
        frame_handlers.register_request_handler("tool_result", handler)
    frame_handlers.register_request_handler("home_request", handler)
    with pytest.raises(ValueError, match="already registered"):
        frame_handlers.register_request_handler("home_request", lambda s, f: None)


async def test_a_message_is_handed_over_without_a_stream_and_its_refusal_comes_straight_back(
    devices, user, frame_handlers
):
    # given a message handler that accepts one run and refuses any other
    received: list[str] = []

    async def complete(session, frame):
        if frame.run_id != "run-ok":
            raise ApplicationError("agent_run_not_found", "No agent run has this run_id.", status=404)
        received.append(frame.run_id)

    frame_handlers.register_message_handler("agent_complete", complete)
    client = await devices(user)

    # when the device sends one it accepts and one it refuses
    await client.send({"type": "agent_complete", "run_id": "run-ok", "files_read": 1, "errors": []})
    await client.send({"type": "agent_complete", "request_id": "m2", "run_id": "nope", "files_read": 0, "errors": []})

    # then the refusal carries the frame's request_id and no seq, the accepted one reached the handler,
    # and no stream log was opened for either (nothing to resume, nothing to evict)
    assert await client.next_frame() == {
        "type": "error",
        "request_id": "m2",
        "code": "agent_run_not_found",
        "message": "No agent run has this run_id.",
    }
    assert received == ["run-ok"]
    assert await loop_redis().zcard(USER_KEY.format(user_id=user.id)) == 0
