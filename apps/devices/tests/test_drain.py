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
from apps.devices.tests.paced_handlers import PACED_CHUNKS, paced_text

pytestmark = pytest.mark.django_db(transaction=True)

DRAIN_DEADLINE_SECONDS = 60
RECONNECT_WINDOW_SECONDS = 2


@pytest.fixture
def holder_process(django_db_blocker):
    server = AsgiServerProcess(
        database=settings.DATABASES["default"]["NAME"],
        imports=("apps.devices.tests.paced_handlers",),
        env={
            "DEVICE_DRAIN_DEADLINE": str(DRAIN_DEADLINE_SECONDS),
            "DEVICE_RECONNECT_WINDOW": str(RECONNECT_WINDOW_SECONDS),
        },
    )
    server.start()
    yield server
    server.kill()


def close_reason(client: DeviceClient) -> str:
    assert client.ws is not None
    received = client.ws.protocol.close_rcvd
    assert received is not None
    return received.reason


async def test_sigterm_mid_answer_moves_the_device_and_the_answer_arrives_whole(user, device_server, holder_process):
    # given a device on the holder process, halfway into a paced answer
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
        async def offline() -> bool:
            row = await device_row(user, "moving")
            return row is not None and not row.is_online

        await wait_until(offline)
        await second.connect()
        await wait_online(user, "moving")
        await second.send({"type": "resume", "request_id": "deploy1", "after_seq": before[-1]["seq"]})
        after = await frames_until_end(second, "deploy1")

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
