"""Answers to the server's own calls do not spend the client's frame budget; a flood still does."""

from __future__ import annotations

import asyncio

from apps.devices import consumers
from apps.devices.answer_frames import AnswerOf
from apps.devices.close_codes import DeviceCloseCode
from apps.devices.services import call_device, send_to_device
from apps.devices.tests.conftest import SOCKET_DB, wait_until

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

    # then the client's own frames still have the whole bucket (less its hello)
    for _ in range(2):
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


async def test_answers_beyond_the_budget_are_paced_by_their_handlers(devices, user, settings, frame_handlers):
    # given a small bucket, a run the server asked this socket for, and a handler of its pieces that
    # holds each piece until released
    settings.DEVICE_FRAME_RATE = 0.001
    settings.DEVICE_FRAME_BURST = 3
    settings.DEVICE_FLOOD_CLOSE_AFTER = 50
    release = asyncio.Event()
    received: list[str] = []
    in_flight = [0, 0]  # now, most at once

    async def hold(session, frame):
        in_flight[0] += 1
        in_flight[1] = max(in_flight[1], in_flight[0])
        await release.wait()
        in_flight[0] -= 1
        received.append(frame.files[0].name)

    frame_handlers.register_message_handler("agent_data", hold, answers=AnswerOf(opened_by="agent_run", key="run_id"))
    client = await devices(user)
    client.agent_handler = lambda frame: asyncio.sleep(0)
    run = {"type": "agent_run", "run_id": "r1", "agent_id": "a1", "config": {}}
    await send_to_device(user_id=user.id, frame=run, device_id=client.device_id)

    # when the device sends many more pieces than the bucket or the pace allows, then a ping
    count = consumers.ANSWERS_IN_FLIGHT + 4
    for n in range(count):
        file = {"path": f"/f{n}", "name": f"f{n}", "content": "x", "metadata": {}}
        await client.send({"type": "agent_data", "run_id": "r1", "files": [file]})
    await client.send({"type": "ping"})
    await wait_until(lambda: in_flight[0] == consumers.ANSWERS_IN_FLIGHT)
    # a socket still reading would answer the ping within milliseconds; give it far longer
    await asyncio.sleep(0.3)
    held_back = client.frames.empty()
    release.set()

    # then no piece was dropped, the socket stopped reading while its handlers were full, and the
    # ping still got its budget afterwards
    assert await client.next_frame() == {"type": "pong"}
    await wait_until(lambda: len(received) == count)
    assert sorted(received) == sorted(f"f{n}" for n in range(count))
    assert in_flight[1] == consumers.ANSWERS_IN_FLIGHT
    assert held_back
