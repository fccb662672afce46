"""Answers to the server's own calls do not spend the client's frame budget; a flood still does."""

from __future__ import annotations

import pytest

from apps.devices.close_codes import DeviceCloseCode
from apps.devices.services import call_device
from apps.devices.tests.conftest import SOCKET_DB

pytestmark = SOCKET_DB


async def test_answers_to_the_servers_calls_leave_the_budget_to_the_client(devices, user, settings):
    # given a bucket of three frames that hardly refills
    settings.DEVICE_FRAME_RATE = 0.001
    settings.DEVICE_FRAME_BURST = 3
    settings.DEVICE_FLOOD_CLOSE_AFTER = 50
    client = await devices(user)

    # when the server makes more calls than the bucket holds and the client answers each
    for n in range(5):
        await call_device(user_id=user.id, action="insert", table="tasks", data={"title": f"Task {n}"})

    # then the client's own frames still have the whole bucket
    for _ in range(3):
        await client.send({"type": "ping"})
        assert await client.next_frame() == {"type": "pong"}


async def test_a_flood_of_tool_results_nobody_asked_for_is_still_dropped_and_closed(devices, user, settings):
    # given a small bucket
    settings.DEVICE_FRAME_RATE = 0.001
    settings.DEVICE_FRAME_BURST = 3
    settings.DEVICE_FLOOD_CLOSE_AFTER = 20
    client = await devices(user)

    # when the client floods answers to calls the server never made
    for n in range(40):
        await client.send({"type": "tool_result", "id": f"never-asked-{n}", "row": None})

    # then it is warned once and closed
    warned = []
    while True:
        frame = await client.next_frame()
        warned.append(frame.get("code"))
        if frame.get("code") == "rate_limited":
            break
    assert await client.wait_closed() == DeviceCloseCode.RATE_LIMITED
    assert warned[-1] == "rate_limited"
