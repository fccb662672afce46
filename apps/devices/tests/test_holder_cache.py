"""A caller's per-process memory of where a device is held (``presence_index.holder_cached``).

A call to a device called a moment ago publishes straight to the holder's node it found then; a
stale memory must never lose the call. The device moved to another node, went offline, or its node
stopped listening: each call still ends as if nothing had been remembered. Two server threads in this
process are two nodes on the real Redis (a node is per event loop), the test's loop is the caller.
"""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async

from apps.accounts.tokens import tokens_issue
from apps.devices import presence_index
from apps.devices.client import DeviceClient
from apps.devices.errors import DeviceOfflineError
from apps.devices.node import ALIVE_KEY
from apps.devices.presence_index import DeviceLocation
from apps.devices.realtime_redis import loop_redis
from apps.devices.services import call_device
from apps.devices.tests.conftest import SOCKET_DB, ServerThread, device_row, wait_online, wait_until

pytestmark = SOCKET_DB


@pytest.fixture
def other_server():
    """A second server in this process: another event loop, so another node."""
    server = ServerThread(name="device-test-server-2")
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def empty_holder_cache():
    presence_index.holders_forget_all()
    yield
    presence_index.holders_forget_all()


async def _connect(url: str, user, device_id: str) -> DeviceClient:
    token = (await sync_to_async(tokens_issue)(user=user)).access_token
    client = DeviceClient(url, token, device_id=device_id)
    await client.connect()
    return client


async def _index_node(user, device_id: str) -> str | None:
    entry: bytes | None = await loop_redis().hget(presence_index.KEY.format(user_id=user.id), device_id)  # type: ignore[assignment]
    return entry.decode().split()[1] if entry else None


async def test_a_call_remembers_the_holder_it_found_and_the_next_goes_straight_to_it(devices, user):
    # given a device held by the server thread, called once from this loop
    client = await devices(user)
    await call_device(user_id=user.id, device_id=client.device_id, action="select", table="tasks")
    remembered = presence_index.holder_cached(user_id=str(user.id), device_id=client.device_id)

    # when its index entry is lost, then the next call still reaches it through the remembered node
    await loop_redis().hdel(presence_index.KEY.format(user_id=user.id), client.device_id)
    await call_device(user_id=user.id, device_id=client.device_id, action="select", table="tasks")

    # then the memory named the node the index named
    assert remembered is not None
    assert remembered.node
    assert len(client.tool_calls) == 2


async def test_a_device_that_moved_to_another_node_is_found_again_and_called_once(
    devices, user, device_server, other_server
):
    # given a device called on the first server (its node remembered), which then moves to the second
    first = await devices(user, device_id="moving")
    await call_device(user_id=user.id, device_id="moving", action="insert", table="tasks", data={"title": "a"})
    old_node = presence_index.holder_cached(user_id=str(user.id), device_id="moving")
    assert old_node is not None
    await first.close()
    second = await _connect(other_server.url, user, "moving")
    await wait_online(user, "moving")
    await wait_until(lambda: _index_node_is_other_than(user, "moving", old_node.node), timeout=5)

    # when it is called again (the remembered node is alive and still listening)
    row = await call_device(user_id=user.id, device_id="moving", action="insert", table="tasks", data={"title": "b"})

    # then the call reached the device on its new node, once, and that node is remembered now
    assert row["row"]["title"] == "b"
    assert [call["data"]["title"] for call in second.tool_calls] == ["b"]
    assert presence_index.holder_cached(user_id=str(user.id), device_id="moving") != old_node
    await second.close()


async def test_a_device_that_went_offline_behind_a_remembered_node_is_offline(devices, user):
    # given a device called once (its node remembered), whose socket then closed
    client = await devices(user, device_id="leaving")
    await call_device(user_id=user.id, device_id="leaving", action="select", table="tasks")
    assert presence_index.holder_cached(user_id=str(user.id), device_id="leaving") is not None
    await client.close()
    await wait_until(lambda: _index_node_missing(user, "leaving"), timeout=5)
    await wait_until(lambda: _row_offline(user, "leaving"), timeout=5)

    # when it is called, then it is offline (not disconnected mid-call), at once
    with pytest.raises(DeviceOfflineError):
        await asyncio.wait_for(
            call_device(user_id=user.id, device_id="leaving", action="select", table="tasks", timeout=60), 5
        )
    assert presence_index.holder_cached(user_id=str(user.id), device_id="leaving") is None


async def _index_node_missing(user, device_id: str) -> bool:
    return await _index_node(user, device_id) is None


async def _row_offline(user, device_id: str) -> bool:
    row = await device_row(user, device_id)
    return row is not None and not row.is_online


async def _index_node_is_other_than(user, device_id: str, node: str) -> bool:
    return await _index_node(user, device_id) not in (None, node)


async def test_a_remembered_node_that_stopped_listening_is_skipped_and_the_call_reaches_the_device(devices, user):
    # given a memory naming a node that is "alive" but no longer subscribed (its process froze)
    client = await devices(user)
    await loop_redis().set(ALIVE_KEY.format(node="gone-node"), "1", ex=60)
    presence_index.holder_remember(
        user_id=str(user.id), device_id=client.device_id, location=DeviceLocation(client.device_id, "x", "gone-node")
    )

    # when it is called
    result = await call_device(user_id=user.id, device_id=client.device_id, action="select", table="tasks")

    # then the index found the real holder, the call reached the device once, and the memory is mended
    assert result == {"rows": []}
    assert len(client.tool_calls) == 1
    mended = presence_index.holder_cached(user_id=str(user.id), device_id=client.device_id)
    assert mended is not None
    assert mended.node == await _index_node(user, client.device_id)


async def test_nothing_is_remembered_when_the_memory_is_switched_off(devices, user, settings):
    settings.DEVICE_HOLDER_CACHE_SECONDS = 0
    client = await devices(user)
    await call_device(user_id=user.id, device_id=client.device_id, action="select", table="tasks")
    assert presence_index.holder_cached(user_id=str(user.id), device_id=client.device_id) is None
