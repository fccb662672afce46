"""A second server process (a separate uvicorn on the same database and Redis) beside this one.

A device held there, whose process is killed with SIGKILL mid-call (nothing of it says goodbye):
the caller here must learn ``device_disconnected`` from the holder's liveness, long before the
call's own timeout. A device that drops from this process's server and comes back on the other
one resumes its running request there: the other process relays the request's frames, and the
request's next tool call reaches the device there.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings

from apps.accounts.tokens import tokens_issue
from apps.core.testing.asgi_process import AsgiServerProcess
from apps.devices.client import DeviceClient
from apps.devices.client.client import SOCKET_PATH
from apps.devices.errors import DeviceDisconnectedError, DeviceOfflineError
from apps.devices.services import call_device
from apps.devices.tests.conftest import Gate, chunk, device_row, frames_until_end, wait_online, wait_until

# Every table is flushed afterwards: the other process runs every app's hello handlers.
pytestmark = pytest.mark.django_db(transaction=True)

CALL_TIMEOUT_SECONDS = 30.0
# How long a caller may take to learn of a dead holder: its liveness key runs out (TTL after its last
# beat, which came up to one heartbeat before the kill), the caller's next liveness check sees it, and
# a margin for a loaded machine (the full suite runs beside other work).
LOADED_MACHINE_MARGIN_SECONDS = 4.0


def dead_holder_bound() -> float:
    return (
        settings.DEVICE_NODE_HEARTBEAT
        + settings.DEVICE_NODE_TTL
        + settings.DEVICE_CALL_LIVENESS_CHECK
        + LOADED_MACHINE_MARGIN_SECONDS
    )


@pytest.fixture
def other_server_process(django_db_blocker):
    server = AsgiServerProcess(database=settings.DATABASES["default"]["NAME"])
    server.start()
    yield server
    server.stop()


async def test_a_killed_holder_process_is_seen_by_the_caller_as_device_disconnected(user, other_server_process):
    # given the device held by the other process, and a call to it the device leaves unanswered
    token = (await sync_to_async(tokens_issue)(user=user)).access_token
    client = DeviceClient(other_server_process.ws_url(SOCKET_PATH), token, device_id="held-elsewhere")

    async def never_answer(call: dict) -> None:
        return None

    client.tool_handler = never_answer
    await client.connect()
    try:
        await wait_online(user, "held-elsewhere")
        call = asyncio.ensure_future(
            call_device(
                user_id=user.id,
                device_id="held-elsewhere",
                action="select",
                table="tasks",
                timeout=CALL_TIMEOUT_SECONDS,
            )
        )
        await wait_until(lambda: client.tool_calls, timeout=10)

        # when the holder process is killed
        started = time.monotonic()
        await asyncio.to_thread(other_server_process.kill)

        # then the caller gets device_disconnected once the holder's liveness ran out, not the
        # timeout it would otherwise wait for
        with pytest.raises(DeviceDisconnectedError):
            await call
        assert dead_holder_bound() < CALL_TIMEOUT_SECONDS  # else the bound below proves nothing
        assert time.monotonic() - started < dead_holder_bound()
    finally:
        await client.close()


async def test_a_call_made_after_the_holder_process_died_fails_fast(user, other_server_process):
    # given the device held by the other process, which is then killed
    token = (await sync_to_async(tokens_issue)(user=user)).access_token
    client = DeviceClient(other_server_process.ws_url(SOCKET_PATH), token, device_id="held-elsewhere")
    await client.connect()
    try:
        await wait_online(user, "held-elsewhere")
        await asyncio.to_thread(other_server_process.kill)

        # when a caller calls the device once the dead holder's liveness has run out
        await asyncio.sleep(settings.DEVICE_NODE_TTL + settings.DEVICE_NODE_HEARTBEAT)
        outcome = asyncio.ensure_future(
            call_device(user_id=user.id, device_id="held-elsewhere", action="select", table="tasks", timeout=4)
        )

        # then it learns that the device is gone, rather than waiting for its timeout
        with pytest.raises((DeviceOfflineError, DeviceDisconnectedError)):
            await outcome
    finally:
        await client.close()


async def test_a_request_resumed_on_another_server_process_streams_on_there(
    user, device_server, other_server_process, frame_handlers
):
    # given a request running on this process's server, which streams, pauses until its socket
    # dropped, streams alone, pauses until the device is back, then streams the rest
    dropped, back = Gate(), Gate()
    streamed_alone = threading.Event()

    async def home(session, frame):
        rid = frame.request_id
        await session.send({"type": "stream_start", "request_id": rid})
        for i in range(3):
            await session.send(chunk(rid, f"a{i} "))
        await dropped.passed()
        for i in range(3):
            await session.send(chunk(rid, f"b{i} "))
        streamed_alone.set()
        await back.passed()
        # a tool call made now follows the device to the other process (through its node)
        await session.call(action="insert", table="tasks", data={"title": "made after the move"})
        for i in range(10):
            await session.send(chunk(rid, f"c{i} "))
            await asyncio.sleep(0)
        await session.send({"type": "stream_end", "request_id": rid})

    frame_handlers.register_request_handler("home_request", home)
    token = (await sync_to_async(tokens_issue)(user=user)).access_token
    first = DeviceClient(device_server.url, token, device_id="roaming")
    second = DeviceClient(other_server_process.ws_url(SOCKET_PATH), token, device_id="roaming")
    await first.connect()
    try:
        await wait_online(user, "roaming")
        await first.send({"type": "home_request", "request_id": "roam1", "message": "go"})
        before = await frames_until_end(first, "roam1", first=2)

        # when the device drops, and comes back on the other server process and resumes there
        await first.close()

        async def offline() -> bool:
            row = await device_row(user, "roaming")
            return row is not None and not row.is_online

        await wait_until(offline)
        dropped.open()
        await wait_until(streamed_alone.is_set)
        await second.connect()
        await wait_online(user, "roaming")
        await second.send({"type": "resume", "request_id": "roam1", "after_seq": before[-1]["seq"]})
        back.open()
        after = await frames_until_end(second, "roam1")

        # then the other process relayed every later frame once, in order, then the live rest
        frames = before + after
        assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1))
        assert frames[-1]["type"] == "stream_end"
        expected = "".join(f"a{i} " for i in range(3)) + "".join(f"b{i} " for i in range(3))
        expected += "".join(f"c{i} " for i in range(10))
        assert "".join(f["chunk"] for f in frames if f["type"] == "stream_text") == expected
        assert [(c["action"], c["data"]["title"]) for c in second.tool_calls] == [("insert", "made after the move")]
    finally:
        await first.close()
        await second.close()
