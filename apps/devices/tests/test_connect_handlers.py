"""Connect handlers and calls reopeners (run after each ``device_hello``) over a real socket: one
that is still running when the device disconnects does not keep the socket's consumer in memory."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import weakref

import pytest

from apps.devices.tests.conftest import SOCKET_DB, Gate, held_socket, wait_until

pytestmark = SOCKET_DB


async def test_a_connect_handler_held_at_disconnect_is_cancelled_and_lets_go_of_the_socket(
    devices, user, frame_handlers
):
    # given a connect handler held by a gate that the test never opens before the disconnect
    gate = Gate()
    started: list[str] = []
    cancelled: list[str] = []

    async def held(session):
        started.append(session.device_id)
        try:
            await gate.passed()
        except asyncio.CancelledError:
            cancelled.append(session.device_id)
            raise

    frame_handlers.register_connect_handler(held)
    client = await devices(user)
    await wait_until(lambda: started)
    socket = weakref.ref(held_socket(user, client.device_id))
    try:
        # when the device disconnects
        await client.close()

        # then the handler was cancelled and the consumer is freed
        await wait_until(lambda: cancelled == [client.device_id])
        await wait_until(lambda: gc.collect() >= 0 and socket() is None)
    finally:
        gate.open()


@pytest.mark.parametrize("register", ["register_connect_handler", "register_calls_reopener"])
async def test_a_hello_task_deaf_to_its_cancellation_does_not_keep_the_socket(devices, user, frame_handlers, register):
    # given a connect handler (or calls reopener) that swallows its cancellation and stays stuck
    started: list[str] = []
    released = False

    async def deaf(session):
        started.append(session.device_id)
        while not released:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0.05)

    getattr(frame_handlers, register)(deaf)
    client = await devices(user)
    await wait_until(lambda: started)
    socket = weakref.ref(held_socket(user, client.device_id))
    try:
        # when the device disconnects while it is stuck
        await client.close()

        # then nothing but the stuck coroutine is left: the consumer is freed
        await wait_until(lambda: gc.collect() >= 0 and socket() is None)
        assert not released
    finally:
        released = True
