"""A tool call to a device held by another server process that is killed mid-call.

The device's socket is held by a separate uvicorn process (same database and Redis); a caller in
this process waits on a call the device never answers; the holder is killed with SIGKILL, so
nothing of it says goodbye. The caller must learn ``device_disconnected`` from the holder's
liveness, long before the call's own timeout.
"""

from __future__ import annotations

import asyncio
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
from apps.devices.tests.conftest import wait_online, wait_until

# Every table is flushed afterwards: the other process runs every app's hello handlers.
pytestmark = pytest.mark.django_db(transaction=True)

CALL_TIMEOUT_SECONDS = 30.0


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

        # then the caller gets device_disconnected, not the timeout it would otherwise wait for
        with pytest.raises(DeviceDisconnectedError):
            await call
        assert time.monotonic() - started < CALL_TIMEOUT_SECONDS
    finally:
        await client.close()


@pytest.mark.xfail(
    strict=True,
    reason=(
        "services._locate: the dead holder's Redis entry is skipped, but the database fallback still finds "
        "the row online (its lease has not run out), so the call goes to a dead channel with no node to "
        "check and waits its whole timeout (device_timeout)"
    ),
)
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
