"""Rolling deploys: a server process that gets SIGTERM mid-answer moves its devices and finishes.

The holder (a separate uvicorn process, as deployed) closes the device's socket with 1012 and a
reconnect delay, turns new sockets away the same way, and keeps running the request; the device
reconnects to another process (this test process's server), resumes, and gets every frame once
through the node relay; the holder exits once the request ended, well before its drain deadline.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings

from apps.accounts.tokens import tokens_issue
from apps.core.testing.asgi_process import AsgiServerProcess
from apps.devices.client import DeviceClient
from apps.devices.client.client import SOCKET_PATH
from apps.devices.close_codes import DeviceCloseCode
from apps.devices.tests.conftest import device_row, frames_until_end, wait_online, wait_until
from apps.devices.tests.paced_handlers import ENDLESS, PACED_CHUNKS, paced_text

pytestmark = pytest.mark.django_db(transaction=True)

DRAIN_DEADLINE_SECONDS = 60
SHORT_DRAIN_DEADLINE_SECONDS = 1
RECONNECT_WINDOW_SECONDS = 2


def start_holder(deadline: float) -> AsgiServerProcess:
    server = AsgiServerProcess(
        database=settings.DATABASES["default"]["NAME"],
        imports=("apps.devices.tests.paced_server",),
        env={"DEVICE_DRAIN_DEADLINE": str(deadline), "DEVICE_RECONNECT_WINDOW": str(RECONNECT_WINDOW_SECONDS)},
    )
    server.start()
    return server


@pytest.fixture
def holder_process(django_db_blocker):
    server = start_holder(DRAIN_DEADLINE_SECONDS)
    yield server
    server.kill()


@pytest.fixture
def hasty_holder_process(django_db_blocker):
    server = start_holder(SHORT_DRAIN_DEADLINE_SECONDS)
    yield server
    server.kill()


def close_reason(client: DeviceClient) -> str:
    assert client.ws is not None
    received = client.ws.protocol.close_rcvd
    assert received is not None
    return received.reason


async def test_sigterm_mid_answer_moves_the_device_and_the_answer_arrives_whole(user, device_server, holder_process):
    # given a device on the holder process (drain deadline far away), halfway into a paced answer
    token = (await sync_to_async(tokens_issue)(user=user)).access_token
    first = DeviceClient(holder_process.ws_url(SOCKET_PATH), token, device_id="moving")
    second = DeviceClient(device_server.url, token, device_id="moving")
    latecomer = DeviceClient(holder_process.ws_url(SOCKET_PATH), token, device_id="late")
    await first.connect()
    try:
        await wait_online(user, "moving")
        await first.send({"type": "home_request", "request_id": "deploy1", "message": "go"})
        before = await frames_until_end(first, "deploy1", first=4)

        # when the holder is told to stop
        holder_process.terminate()

        # then the device is told to move: 1012 with a reconnect delay within the window
        assert await asyncio.wait_for(first.wait_closed(), 10) == DeviceCloseCode.SERVICE_RESTART == 1012
        delay = json.loads(close_reason(first))["reconnect_after_ms"]
        assert 0 <= delay <= RECONNECT_WINDOW_SECONDS * 1000
        # and a new socket is turned away the same way while the holder drains
        await latecomer.connect(hello=False)
        assert await asyncio.wait_for(latecomer.wait_closed(), 10) == 1012
        assert "reconnect_after_ms" in json.loads(close_reason(latecomer))

        # when the device reconnects to the other process and resumes there
        after = await moved_and_resumed(second, user, "moving", "deploy1", after_seq=before[-1]["seq"])

        # then it got every frame once, in order, up to stream_end
        frames = before + after
        assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1))
        assert frames[-1]["type"] == "stream_end"
        text = "".join(f["chunk"] for f in frames if f["type"] == "stream_text")
        assert text == "".join(paced_text(i) for i in range(PACED_CHUNKS))
        # and the holder exits once its request ended, not at its drain deadline
        assert await asyncio.to_thread(holder_process.wait, DRAIN_DEADLINE_SECONDS / 2) is not None
    finally:
        await first.close()
        await second.close()
        await latecomer.close()


async def offline(user, device_id: str) -> bool:
    row = await device_row(user, device_id)
    return row is not None and not row.is_online


async def test_a_request_still_running_at_the_drain_deadline_ends_with_server_restarting(
    user, device_server, hasty_holder_process
):
    # given a device on a holder whose drain deadline is short, reading a request that never ends
    token = (await sync_to_async(tokens_issue)(user=user)).access_token
    first = DeviceClient(hasty_holder_process.ws_url(SOCKET_PATH), token, device_id="stuck")
    second = DeviceClient(device_server.url, token, device_id="stuck")
    await first.connect()
    try:
        await wait_online(user, "stuck")
        await first.send({"type": "home_request", "request_id": "forever1", "message": ENDLESS})
        before = await frames_until_end(first, "forever1", first=2)

        # when the holder is told to stop, and the device moves and resumes
        hasty_holder_process.terminate()
        assert await asyncio.wait_for(first.wait_closed(), 10) == 1012
        after = await moved_and_resumed(second, user, "stuck", "forever1", after_seq=before[-1]["seq"])

        # then the request is cut at the deadline: it says why, then ends as a cancelled stream
        frames = before + after
        assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1))
        assert [(f["type"], f.get("code")) for f in after] == [("error", "server_restarting"), ("stream_end", None)]
        assert after[-1]["cancelled"] is True
        # and the holder exits
        assert await asyncio.to_thread(hasty_holder_process.wait, 30) is not None
    finally:
        await first.close()
        await second.close()


async def moved_and_resumed(client, user, device_id: str, request_id: str, *, after_seq: int) -> list[dict]:
    """Once the old socket is gone, ``client`` (the device on the other process) connects and resumes
    ``request_id`` after ``after_seq``: the frames it then gets, up to ``stream_end``."""
    await wait_until(lambda: offline(user, device_id))
    await client.connect()
    await wait_online(user, device_id)
    await client.send({"type": "resume", "request_id": request_id, "after_seq": after_seq})
    return await frames_until_end(client, request_id)
