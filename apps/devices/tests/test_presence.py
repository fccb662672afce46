"""device_hello first, presence recording, a second socket replacing the first, heartbeat."""

from __future__ import annotations

import asyncio
import time

from asgiref.sync import sync_to_async

from apps.devices.close_codes import DeviceCloseCode
from apps.devices.models import Device
from apps.devices.services import call_device
from apps.devices.tests.conftest import SOCKET_DB, device_row, wait_until

pytestmark = SOCKET_DB


async def test_hello_records_the_device_and_close_marks_it_offline(devices, user):
    # given / when a device says hello with its name and platform
    client = await devices(user, device_id="laptop", name="Work laptop", platform="darwin", agent_ids=["a1", "a2"])
    row = await device_row(user, "laptop")

    # then it is recorded online, with the channel that holds it
    assert row.is_online
    assert row.channel_name
    assert (row.name, row.platform, row.agent_ids) == ("Work laptop", "darwin", ["a1", "a2"])
    assert row.first_seen_at <= row.last_seen_at

    # when it disconnects, then it is offline and keeps its history
    await client.close()

    async def offline() -> bool:
        row = await device_row(user, "laptop")
        return row is not None and not row.is_online

    await wait_until(offline)
    row = await device_row(user, "laptop")
    assert row.channel_name == ""
    assert await sync_to_async(Device.objects.filter(user=user).count)() == 1


async def test_first_frame_other_than_hello_closes_bad_hello(devices, user):
    client = await devices(user, hello=False, wait=False)
    await client.send({"type": "home_request", "message": "hi"})
    assert await client.wait_closed() == DeviceCloseCode.BAD_HELLO


async def test_invalid_hello_closes_bad_hello(devices, user):
    client = await devices(user, hello=False, wait=False)
    await client.send({"type": "device_hello", "agent_ids": []})
    error = await client.next_frame()
    assert error["code"] == "invalid_frame"
    assert "device_id" in error["message"]
    assert await client.wait_closed() == DeviceCloseCode.BAD_HELLO


async def test_no_hello_in_time_closes_hello_timeout(devices, user, settings):
    settings.DEVICE_HELLO_TIMEOUT = 0.3
    client = await devices(user, hello=False, wait=False)
    assert await asyncio.wait_for(client.wait_closed(), 10) == DeviceCloseCode.HELLO_TIMEOUT


async def test_a_hello_received_in_time_is_not_cut_by_the_deadline_while_it_is_processed(
    devices, user, settings, monkeypatch
):
    # given a hello deadline shorter than the hello's own processing (a loaded database)
    from apps.devices import hello

    settings.DEVICE_HELLO_TIMEOUT = 0.3
    slow_connect = hello.device_connect

    def device_connect(**kwargs):
        time.sleep(0.8)
        return slow_connect(**kwargs)

    monkeypatch.setattr(hello, "device_connect", device_connect)

    # when the hello arrives before the deadline
    client = await devices(user, device_id="slow")

    # then the device comes online and stays: the deadline is for receiving the hello
    await asyncio.sleep(0.5)
    assert client.close_code is None
    assert (await device_row(user, "slow")).is_online


async def test_second_socket_for_the_same_device_replaces_the_first(devices, user):
    # given a device online
    first = await devices(user, device_id="desk")
    old_channel = (await device_row(user, "desk")).channel_name

    # when the same device connects again
    second = await devices(user, device_id="desk", wait=False)

    # then the first socket is closed as replaced, and calls reach the second
    assert await asyncio.wait_for(first.wait_closed(), 10) == DeviceCloseCode.REPLACED

    async def moved() -> bool:
        row = await device_row(user, "desk")
        return row is not None and row.is_online and row.channel_name != old_channel

    await wait_until(moved)
    await call_device(user_id=user.id, device_id="desk", action="select", table="tasks")
    assert len(second.tool_calls) == 1
    assert first.tool_calls == []


async def test_heartbeat_keeps_an_answering_client_and_closes_a_silent_one(devices, user, settings):
    # given short heartbeats, one client that answers pings and one that does not
    settings.DEVICE_PING_INTERVAL = 0.2
    settings.DEVICE_PONG_TIMEOUT = 1.0
    alive = await devices(user, device_id="alive")
    silent = await devices(user, device_id="silent", answer_pings=False)

    # when the silent one misses its pong
    code = await asyncio.wait_for(silent.wait_closed(), 10)

    # then only it is closed, and the answering one has been pinged and stays open
    assert code == DeviceCloseCode.HEARTBEAT_TIMEOUT
    await wait_until(lambda: alive.pings >= 3)
    assert alive.close_code is None
    assert (await device_row(user, "alive")).is_online


async def test_last_seen_is_flushed_periodically(devices, user, settings):
    # given a short presence flush
    settings.DEVICE_PRESENCE_FLUSH_INTERVAL = 0.2
    client = await devices(user)
    before = (await device_row(user, client.device_id)).last_seen_at

    # when the device keeps talking
    await asyncio.sleep(0.05)
    await client.send({"type": "ping"})
    await client.next_frame()

    # then the row's last_seen moves forward without waiting for a disconnect
    async def moved() -> bool:
        row = await device_row(user, client.device_id)
        return row is not None and row.last_seen_at > before

    await wait_until(moved)


async def test_stale_row_whose_lease_ran_out_is_not_online(devices, user):
    # given a row left online by a server that died (lease in the past)
    from datetime import timedelta

    from django.utils import timezone

    from apps.devices.errors import DeviceOfflineError
    from apps.devices.services import devices_online

    await sync_to_async(Device.objects.create)(
        user=user,
        device_id="ghost",
        is_online=True,
        channel_name="specific.dead!channel",
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )

    # then it is neither listed nor called
    assert await devices_online(user_id=user.id) == []
    try:
        await call_device(user_id=user.id, device_id="ghost", action="select", table="tasks")
    except DeviceOfflineError:
        pass
    else:
        raise AssertionError("a stale device was called")
