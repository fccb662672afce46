"""Socket hardening: floods are closed, hostile frames get clean errors, dead sockets leave no zombie,
device rows are capped, unknown paths are refused, and a base URL is enough for the client."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets
from asgiref.sync import sync_to_async

from apps.devices.client.client import socket_url
from apps.devices.close_codes import DeviceCloseCode
from apps.devices.errors import DeviceOfflineError
from apps.devices.models import Device
from apps.devices.services import call_device
from apps.devices.tests.conftest import SOCKET_DB, device_row, wait_until

pytestmark = SOCKET_DB


async def test_a_sustained_ping_flood_is_closed_with_4429(devices, user, settings):
    # given a small budget
    settings.DEVICE_FRAME_RATE = 50.0
    settings.DEVICE_FRAME_BURST = 20
    settings.DEVICE_FLOOD_CLOSE_AFTER = 100
    client = await devices(user)
    # when the client floods pings, faster than the rate, for long enough
    for _ in range(600):
        if client.close_code is not None:
            break
        try:
            await client.send({"type": "ping"})
        except websockets.ConnectionClosed:
            break
    # then the server closes it as flooding
    assert await asyncio.wait_for(client.wait_closed(), 10) == DeviceCloseCode.RATE_LIMITED


async def test_deeply_nested_json_is_a_malformed_frame_and_the_socket_lives_on(devices, user):
    # given a device online
    client = await devices(user)
    # when it sends JSON nested deeper than the parser's recursion limit
    await client.send_raw("[" * 100_000 + "]" * 100_000)
    # then it gets an error frame and the socket still answers calls
    error = await client.next_frame()
    assert error["code"] == "malformed_frame"
    assert await call_device(user_id=user.id, device_id=client.device_id, action="select", table="tasks") == {
        "rows": []
    }


async def test_nul_in_device_id_is_a_bad_hello(devices, user):
    # when
    client = await devices(user, hello=False)
    await client.send({"type": "device_hello", "device_id": "desk\u0000x", "agent_ids": []})
    # then
    assert await asyncio.wait_for(client.wait_closed(), 10) == DeviceCloseCode.BAD_HELLO


async def test_device_rows_are_capped_and_the_oldest_offline_row_is_recycled(devices, user, settings):
    # given a cap of 3 rows, three devices seen once and gone
    settings.DEVICE_MAX_PER_USER = 3
    for name in ("a", "b", "c"):
        client = await devices(user, device_id=name)
        await client.close()
        await wait_until(lambda n=name: _offline(user, n))
    # when a fourth device says hello
    await devices(user, device_id="d")
    # then the least recently seen row made room
    names = await sync_to_async(lambda: sorted(Device.objects.filter(user=user).values_list("device_id", flat=True)))()
    assert names == ["b", "c", "d"]


async def test_a_new_device_is_refused_with_4413_when_all_capped_devices_are_online(devices, user, settings):
    settings.DEVICE_MAX_PER_USER = 1
    await devices(user, device_id="only")
    extra = await devices(user, device_id="extra", wait=False)
    assert await asyncio.wait_for(extra.wait_closed(), 10) == DeviceCloseCode.DEVICE_LIMIT
    with pytest.raises(DeviceOfflineError):
        await call_device(user_id=user.id, device_id="extra", action="select", table="tasks", timeout=1)


async def _offline(user, device_id: str) -> bool:
    row = await device_row(user, device_id)
    return row is not None and not row.is_online


async def test_a_socket_to_an_unknown_path_is_refused_without_a_server_error(device_server):
    # when a client opens a socket on the bare server address
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(f"ws://127.0.0.1:{device_server.port}/")
    # then the handshake is refused (403), not a 500
    assert refused.value.response.status_code == 403


def test_the_client_accepts_the_server_base_url():
    assert socket_url("ws://127.0.0.1:8000") == "ws://127.0.0.1:8000/api/v1/ws/device"
    assert socket_url("ws://127.0.0.1:8000/") == "ws://127.0.0.1:8000/api/v1/ws/device"
    assert socket_url("wss://h/api/v1/ws/device?token=x") == "wss://h/api/v1/ws/device?token=x"


async def test_an_oversized_frame_is_refused_by_the_server_itself(devices, user, settings):
    # given the test server's websocket cap (as the Procfile's --ws-max-size)
    client = await devices(user)
    # when a frame over that cap arrives, it never reaches the app: the server closes with 1009
    await client.send_raw(json.dumps({"type": "ping", "pad": "x" * (settings.DEVICE_WS_MAX_SIZE + 10)}))
    assert await asyncio.wait_for(client.wait_closed(), 10) == 1009


@pytest.mark.parametrize(
    "field",
    [
        {"name": "desk\u0000top"},
        {"name": "desk\ud800top"},
        {"platform": "linux\u0000"},
        {"platform": "\udfff"},
        {"agent_ids": ["a\u0000"]},
        {"agent_ids": ["\ud800"]},
    ],
)
async def test_nul_or_a_lone_surrogate_in_a_hello_field_is_a_bad_hello_not_a_server_error(devices, user, field):
    # when a hello carries text no database can store
    client = await devices(user, hello=False)
    await client.send({"type": "device_hello", "device_id": "desktop", "agent_ids": [], **field})
    # then it is refused as an invalid frame naming the field, and closed as a bad hello (not 1011)
    error = await client.next_frame()
    assert error["code"] == "invalid_frame"
    assert next(iter(field)) in error["message"]
    assert await asyncio.wait_for(client.wait_closed(), 10) == DeviceCloseCode.BAD_HELLO


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "resume", "request_id": "\ud800", "after_seq": 0},
        {"type": "cancel", "request_id": "r\u0000"},
        {"type": "floating_request", "request_id": "f1", "message": "hi \ud83d", "scope": {"type": "tasks"}},
        {"type": "home_request", "message": "hi", "conversation_history": [{"role": "user", "content": "\u0000"}]},
        {"type": "ping", "\ud800": 1},
    ],
)
async def test_text_no_database_can_store_is_an_invalid_frame_in_every_frame_and_the_socket_lives_on(
    devices, user, frame_handlers, frame
):
    # given a device online, with a request handler that would run any request it is given
    started: list[object] = []

    async def handler(session, request):
        started.append(request)

    frame_handlers.register_request_handler("home_request", handler)
    frame_handlers.register_request_handler("floating_request", handler)
    client = await devices(user)
    # when a frame holds NUL or an unpaired surrogate anywhere
    await client.send(frame)
    # then it gets a stable error, the handler never sees it, and the socket still answers
    error = await client.next_frame()
    assert (error["type"], error["code"]) == ("error", "invalid_frame")
    await client.send({"type": "ping"})
    assert await client.next_frame() == {"type": "pong"}
    assert started == []


async def test_a_handshake_while_redis_is_down_is_closed_with_try_again_later(devices, user, monkeypatch, tmp_path):
    # given a channel layer whose Redis is gone (nothing listens on its socket)
    from channels_redis.core import RedisChannelLayer

    from apps.devices import consumers

    unreachable = RedisChannelLayer(hosts=[f"unix://{tmp_path}/no-redis.sock"])
    monkeypatch.setattr(consumers, "loop_layer", lambda: unreachable)

    # when a device opens its socket
    client = await devices(user, hello=False, wait=False)

    # then the handshake is accepted and closed with a code the client can act on (retry later),
    # instead of a dropped connection with no close frame
    assert await asyncio.wait_for(client.wait_closed(), 10) == DeviceCloseCode.TRY_AGAIN_LATER
