"""Negotiated capabilities: a seed hello gets the seed's frames only; a hello with ``capabilities``
gets ``device_welcome`` first, and capability frames reach only the sockets that asked for them,
from any process (``user_frame_broadcast``)."""

from __future__ import annotations

import asyncio

import pytest

from apps.devices import capabilities
from apps.devices.capabilities import PROTOCOL_VERSION, capable_sockets
from apps.devices.close_codes import DeviceCloseCode
from apps.devices.realtime_redis import loop_redis, loop_redis_close
from apps.devices.services import send_to_device, user_frame_broadcast
from apps.devices.tests.conftest import SOCKET_DB, capable_of, wait_until

pytestmark = SOCKET_DB


def progress_frame(run_id: str = "run-1") -> dict:
    return {
        "type": "agent_progress",
        "run_id": run_id,
        "agent_id": "agent-1",
        "phase": "extracting",
        "files_read": 3,
        "items_extracted": 2,
        "items_delivered": 1,
    }


async def test_a_seed_hello_gets_no_welcome_only_the_seed_frames(devices, user):
    # given a client saying hello as the seed's client does (no capabilities field)
    client = await devices(user)

    # when it pings
    await client.send({"type": "ping"})

    # then the first and only frame it got is the pong: no device_welcome
    assert await client.next_frame() == {"type": "pong"}
    assert client.received == ["pong"]
    assert client.welcome is None


async def test_a_capable_hello_gets_device_welcome_first_with_the_intersection(devices, user):
    # given a hello asking for a capability the server has, one it does not, and one twice
    client = await devices(user, capabilities=["agent_progress", "teleport", "agent_progress"])

    # when it pings after its hello
    await client.send({"type": "ping"})

    # then device_welcome came before anything else, naming only what the server will use
    assert await client.next_frame() == {
        "type": "device_welcome",
        "protocol": PROTOCOL_VERSION,
        "capabilities": ["agent_progress"],
    }
    assert await client.next_frame() == {"type": "pong"}
    assert client.received[:2] == ["device_welcome", "pong"]


async def test_an_empty_capability_list_is_welcomed_with_nothing(devices, user):
    client = await devices(user, capabilities=[])
    assert await client.next_frame() == {"type": "device_welcome", "protocol": PROTOCOL_VERSION, "capabilities": []}


async def test_the_welcome_offers_every_capability_the_server_has(devices, user):
    client = await devices(user, capabilities=["usage_notice", "agent_progress"])
    welcome = await client.next_frame()
    assert welcome["capabilities"] == ["usage_notice", "agent_progress"]
    assert set(welcome["capabilities"]) <= capabilities.offered_capabilities()


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ("agent_progress", "capabilities"),
        ([1], "capabilities.0"),
        ([""], "capabilities.0"),
        (["x" * 65], "capabilities.0"),
        (["agent\nprogress"], "capabilities.0"),
        ([f"cap{i}" for i in range(33)], "capabilities"),
    ],
    ids=["not-a-list", "not-a-string", "empty", "too-long", "control-character", "too-many"],
)
async def test_an_invalid_capabilities_field_is_an_invalid_hello(devices, user, value, field):
    # given a hello whose capabilities field is invalid
    client = await devices(user, hello=False, wait=False)
    await client.send({"type": "device_hello", "device_id": "laptop-1", "capabilities": value})

    # then the usual invalid-frame error naming the field, and the bad-hello close
    error = await client.next_frame()
    assert (error["type"], error["code"]) == ("error", "invalid_frame")
    assert f"device_hello frame: {field}:" in error["message"]
    assert await client.wait_closed() == DeviceCloseCode.BAD_HELLO


async def test_a_broadcast_reaches_only_the_capable_sockets_of_the_user(devices, user, make_user):
    # given the user's seed socket and capable socket, and another user's capable socket
    other = await asyncio.to_thread(make_user, "bob@example.com")
    seed = await devices(user)
    capable = await devices(user, capabilities=["agent_progress"])
    stranger = await devices(other, capabilities=["agent_progress"])
    assert (await capable.next_frame())["type"] == "device_welcome"
    assert (await stranger.next_frame())["type"] == "device_welcome"
    await capable_of(user)

    # when a sender outside the server's process loop broadcasts a progress frame to the user
    sent = await user_frame_broadcast(user_id=user.id, frame=progress_frame(), capability="agent_progress")

    # then only the user's capable socket got it
    assert sent == 1
    await wait_until(lambda: capable.progress)
    assert capable.progress == [progress_frame()]
    await seed.send({"type": "ping"})
    await stranger.send({"type": "ping"})
    assert await seed.next_frame() == {"type": "pong"}
    assert await stranger.next_frame() == {"type": "pong"}
    assert seed.received == ["pong"]
    assert stranger.progress == []


async def test_a_capability_frame_sent_straight_to_a_seed_socket_is_dropped(devices, user):
    # given a seed socket
    seed = await devices(user)

    # when a capability frame is sent to its device directly (not by broadcast)
    await send_to_device(user_id=user.id, device_id=seed.device_id, frame=progress_frame())
    await seed.send({"type": "ping"})

    # then the socket never sees it: the next frame is the pong
    assert await seed.next_frame() == {"type": "pong"}
    assert seed.received == ["pong"]


async def test_a_closed_socket_is_no_longer_a_broadcast_target(devices, user):
    # given a capable socket that then closes
    client = await devices(user, capabilities=["agent_progress"])
    await capable_of(user)
    await client.close()

    # then it leaves the capability index, and a broadcast reaches nobody
    async def gone() -> bool:
        return not await capable_sockets(user_id=str(user.id), capability="agent_progress")

    await wait_until(gone)
    assert await user_frame_broadcast(user_id=user.id, frame=progress_frame(), capability="agent_progress") == 0


async def test_a_broadcast_under_the_wrong_capability_is_refused(user):
    with pytest.raises(ValueError, match="agent_progress"):
        await user_frame_broadcast(user_id=user.id, frame=progress_frame(), capability="usage_notice")


async def test_handlers_see_the_negotiated_capabilities_on_their_session(devices, user, frame_handlers):
    # given a request handler that tells what its session negotiated
    async def home(session, frame):
        names = ",".join(sorted(session.capabilities)) or "-"
        await session.send({"type": "stream_text", "request_id": frame.request_id, "chunk": names})
        await session.send({"type": "stream_end", "request_id": frame.request_id})

    frame_handlers.register_request_handler("home_request", home)
    seed = await devices(user)
    capable = await devices(user, capabilities=["usage_notice", "teleport"])

    # then the seed session has none, the capable one what the welcome named
    seed_frames = [f async for f in seed.home_request("x")]
    capable_frames = [f async for f in capable.home_request("x")]
    assert [f.get("chunk") for f in seed_frames if f["type"] == "stream_text"] == ["-"]
    assert [f.get("chunk") for f in capable_frames if f["type"] == "stream_text"] == ["usage_notice"]


async def test_a_capability_withdrawal_leaves_an_entry_another_socket_took_over():
    # given the capabilities of a device's newer socket
    key = capabilities.KEY.format(user_id="caps-x")
    await capabilities.capabilities_announce(
        user_id="caps-x", device_id="d", channel="newer", capabilities=["agent_progress"]
    )
    try:
        # when the older socket of the device withdraws, then the newer socket's entry stays
        await capabilities.capabilities_withdraw(user_id="caps-x", device_id="d", channel="older")
        assert await loop_redis().hget(key, "d") is not None

        # and when the newer one withdraws, it goes
        await capabilities.capabilities_withdraw(user_id="caps-x", device_id="d", channel="newer")
        assert await loop_redis().hget(key, "d") is None
    finally:
        await loop_redis().delete(key)
        await loop_redis_close()


def test_sockets_that_negotiated_the_same_capabilities_share_one_set():
    first = capabilities.capability_set(["agent_progress", "usage_notice"])
    second = capabilities.capability_set(["usage_notice", "agent_progress"])
    other = capabilities.capability_set(["usage_notice"])
    assert first == {"agent_progress", "usage_notice"}
    assert second is first
    assert other == {"usage_notice"}
    assert other is not first
