"""call_device / send_to_device against a real server and the reference client, from the socket's
own event loop and from elsewhere (the test's loop, a subprocess) through the holder's node."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest
from django.conf import settings as django_settings
from django.db import connection

from apps.devices.errors import (
    DeviceBusyError,
    DeviceDisconnectedError,
    DeviceOfflineError,
    DeviceTimeoutError,
    DeviceToolError,
)
from apps.devices.node import ALIVE_KEY
from apps.devices.presence_index import KEY as PRESENCE_KEY
from apps.devices.realtime_redis import loop_redis
from apps.devices.services import call_device, devices_online, send_to_device
from apps.devices.tests.conftest import SOCKET_DB

pytestmark = SOCKET_DB


async def test_remote_call_runs_every_crud_action_on_the_device(devices, user):
    # given a device online, reached from another event loop (the channel-layer path)
    client = await devices(user)

    # when the server inserts, reads, lists, updates and deletes through tool calls
    inserted = await call_device(
        user_id=user.id, action="insert", table="tasks", data={"title": "Buy milk", "priority": "high"}
    )
    row = inserted["row"]
    got = await call_device(user_id=user.id, action="get", table="tasks", data={"id": row["id"]})
    listed = await call_device(user_id=user.id, action="select", table="tasks", filters={"status": "todo"})
    updated = await call_device(
        user_id=user.id, action="update", table="tasks", data={"id": row["id"], "updates": {"status": "done"}}
    )
    deleted = await call_device(user_id=user.id, action="delete", table="tasks", data={"id": row["id"]})
    missing = await call_device(user_id=user.id, action="get", table="tasks", data={"id": row["id"]})

    # then each answer is the client's real tool_result payload
    assert row["title"] == "Buy milk"
    assert row["id"]
    assert row["createdAt"] > 0
    assert got == {"row": row}
    assert [r["id"] for r in listed["rows"]] == [row["id"]]
    assert updated["row"]["status"] == "done"
    assert deleted == {"deleted": True}
    assert missing == {"row": None}
    assert [c["action"] for c in client.tool_calls] == ["insert", "get", "select", "update", "delete", "get"]


async def test_remote_vector_upsert_and_search(devices, user):
    # given
    await devices(user)
    await call_device(user_id=user.id, action="vector_upsert", data={"id": "n1", "content": "deploy"}, vector=[1, 0])
    await call_device(user_id=user.id, action="vector_upsert", data={"id": "n2", "content": "lunch"}, vector=[0, 1])

    # when
    found = await call_device(user_id=user.id, action="vector_search", vector=[0.9, 0.1], limit=1)

    # then
    assert [r["id"] for r in found["results"]] == ["n1"]


async def test_call_from_the_sockets_own_loop_goes_straight_to_the_consumer(devices, user, device_server):
    # given a device, and a coroutine running on the server's own event loop
    client = await devices(user)

    async def on_server_loop():
        from apps.devices import connections

        local = connections.local_consumer(user_id=str(user.id), device_id=client.device_id) is not None
        result = await call_device(
            user_id=user.id, device_id=client.device_id, action="insert", table="notes", data={"title": "n"}
        )
        return local, result

    # when
    local, result = await asyncio.to_thread(device_server.run, on_server_loop())

    # then the call used the in-process path and returned the client's row
    assert local is True
    assert result["row"]["title"] == "n"
    assert result["row"]["updatedAt"] == result["row"]["createdAt"]


async def test_call_from_another_process_through_the_holders_node(devices, user):
    # given a device online, and a separate Python process with the same settings and test database
    client = await devices(user)
    script = (
        "import asyncio, json, django\n"
        "django.setup()\n"
        "from django.db import connection\n"
        f"connection.settings_dict['NAME'] = {connection.settings_dict['NAME']!r}\n"
        "from apps.devices.services import call_device\n"
        "print(json.dumps(asyncio.run(call_device(user_id=%r, action='insert', table='clients',"
        " data={'name': 'ACME'}, device_id=%r))))\n" % (str(user.id), client.device_id)
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "adiuva.settings.test"}

    # when
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        cwd=str(django_settings.BASE_DIR),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)

    # then the other process got the row the device inserted
    assert proc.returncode == 0, err.decode()[-2000:]
    assert json.loads(out.decode().strip().splitlines()[-1])["row"]["name"] == "ACME"
    assert client.tool_calls[-1]["table"] == "clients"


async def test_a_holder_whose_node_stopped_listening_fails_the_call_at_once(devices, user):
    # given a device whose index entry names a node that is "alive" but no longer subscribed
    # (its process froze or lost its Redis connection after the last heartbeat)
    client = await devices(user)
    redis = loop_redis()
    key = PRESENCE_KEY.format(user_id=user.id)
    channel = (await redis.hget(key, client.device_id)).decode().split()[0]
    await redis.set(ALIVE_KEY.format(node="gone-node"), "1", ex=60)
    await redis.hset(key, client.device_id, f"{channel} gone-node 9999999999.000")

    # when a call with a long timeout is made, then it fails as disconnected without waiting
    with pytest.raises(DeviceDisconnectedError):
        await asyncio.wait_for(
            call_device(user_id=user.id, device_id=client.device_id, action="select", table="tasks", timeout=60), 5
        )
    assert client.tool_calls == []


async def test_a_device_whose_holder_process_is_gone_is_offline_without_waiting(devices, user):
    # given a device whose index entry names a node with no liveness key (its process died), while
    # the database row still looks online (its lease has not run out)
    client = await devices(user)
    key = PRESENCE_KEY.format(user_id=user.id)
    channel = (await loop_redis().hget(key, client.device_id)).decode().split()[0]
    await loop_redis().hset(key, client.device_id, f"{channel} dead-node 9999999999.000")

    # when it is called, by id and without one, then it is offline at once (not a wait for the timeout)
    with pytest.raises(DeviceOfflineError):
        await asyncio.wait_for(
            call_device(user_id=user.id, device_id=client.device_id, action="select", table="tasks", timeout=60), 5
        )
    with pytest.raises(DeviceOfflineError):
        await asyncio.wait_for(call_device(user_id=user.id, action="select", table="tasks", timeout=60), 5)
    assert client.tool_calls == []


async def test_a_call_still_reaches_the_device_when_its_index_entry_is_lost(devices, user):
    # given a device online whose presence index entry was lost (a Redis hiccup)
    client = await devices(user)
    await loop_redis().hdel(PRESENCE_KEY.format(user_id=user.id), client.device_id)

    # when it is called by id and without one
    named = await call_device(
        user_id=user.id, device_id=client.device_id, action="insert", table="tasks", data={"title": "a"}
    )
    unnamed = await call_device(user_id=user.id, action="get", table="tasks", data={"id": named["row"]["id"]})

    # then both reached it (the database knows it is online; the socket's channel carries the call)
    assert unnamed["row"]["title"] == "a"
    assert [call["action"] for call in client.tool_calls] == ["insert", "get"]


async def test_calls_beyond_the_pending_limit_are_refused_as_busy(devices, user, settings):
    # given a socket allowed one call in flight, and a device that never answers
    settings.DEVICE_MAX_PENDING_CALLS = 1
    client = await devices(user)

    arrived = asyncio.Event()

    async def silent(call):
        arrived.set()
        return None

    client.tool_handler = silent
    first = asyncio.ensure_future(call_device(user_id=user.id, action="select", table="tasks", timeout=3))
    await asyncio.wait_for(arrived.wait(), 5)

    # when a second call arrives while the first waits, then it is refused at once
    with pytest.raises(DeviceBusyError):
        await asyncio.wait_for(call_device(user_id=user.id, action="select", table="tasks", timeout=30), 5)
    with pytest.raises(DeviceTimeoutError):
        await first


async def test_offline_user_gets_device_offline(user):
    with pytest.raises(DeviceOfflineError):
        await call_device(user_id=user.id, action="select", table="tasks")


async def test_unknown_device_id_is_offline(devices, user):
    await devices(user)
    with pytest.raises(DeviceOfflineError):
        await call_device(user_id=user.id, device_id="not-mine", action="select", table="tasks")


async def test_another_users_device_is_never_reached(devices, user, make_user):
    # given alice's device online and bob with no device
    alice_device = await devices(user)
    bob = await asyncio.to_thread(make_user, "bob@example.com")

    # when bob names alice's device
    with pytest.raises(DeviceOfflineError):
        await call_device(user_id=bob.id, device_id=alice_device.device_id, action="select", table="tasks")
    with pytest.raises(DeviceOfflineError):
        await send_to_device(user_id=bob.id, device_id=alice_device.device_id, frame={"type": "ping"})

    # then alice's device saw nothing and bob sees no device
    assert alice_device.tool_calls == []
    assert await devices_online(user_id=bob.id) == []


async def test_unanswered_call_times_out(devices, user):
    # given a device that never answers
    client = await devices(user)

    async def silent(call):
        return None

    client.tool_handler = silent

    # when / then
    with pytest.raises(DeviceTimeoutError):
        await call_device(user_id=user.id, action="select", table="tasks", timeout=0.3)


async def test_client_error_is_a_device_tool_error_with_its_message(devices, user):
    await devices(user)
    with pytest.raises(DeviceToolError) as caught:
        await call_device(user_id=user.id, action="select", table="no_such_table")
    assert "unknown table" in caught.value.message
    assert caught.value.code == "device_tool_error"


async def test_disconnect_during_a_remote_call_fails_fast(devices, user):
    # given a device that drops the socket when a call arrives
    client = await devices(user)

    async def hang_up(call):
        await client.ws.close()
        return None

    client.tool_handler = hang_up

    # when the call has a long timeout, it still ends as soon as the socket is gone
    with pytest.raises(DeviceDisconnectedError):
        await asyncio.wait_for(call_device(user_id=user.id, action="select", table="tasks", timeout=60), 10)


async def test_disconnect_during_a_local_call_fails_fast(devices, user, device_server):
    client = await devices(user)

    async def hang_up(call):
        await client.ws.close()
        return None

    client.tool_handler = hang_up

    async def on_server_loop():
        try:
            await call_device(user_id=user.id, device_id=client.device_id, action="select", table="tasks", timeout=60)
        except DeviceDisconnectedError as exc:
            return exc.code

    assert await asyncio.to_thread(device_server.run, on_server_loop()) == "device_disconnected"


async def test_late_result_is_ignored_and_the_next_call_gets_its_own(devices, user):
    # given a device whose first answer comes after the caller gave up
    client = await devices(user)
    release = asyncio.Event()
    first = True

    async def slow_first(call):
        nonlocal first
        if first:
            first = False
            await release.wait()
        return client.store.execute(call)

    client.tool_handler = slow_first
    with pytest.raises(DeviceTimeoutError):
        await call_device(user_id=user.id, action="insert", table="clients", data={"name": "late"}, timeout=0.3)

    # when the late result arrives, then a new call runs
    release.set()
    await asyncio.sleep(0.1)
    result = await call_device(user_id=user.id, action="insert", table="clients", data={"name": "fresh"})

    # then the new call gets its own answer, not the late one
    assert result["row"]["name"] == "fresh"


async def test_concurrent_calls_each_get_their_own_result(devices, user):
    # given a device that answers in reverse order of arrival
    client = await devices(user)

    async def reversed_order(call):
        await asyncio.sleep(0.3 - 0.01 * int(call["data"]["name"]))
        return client.store.execute(call)

    client.tool_handler = reversed_order

    # when 20 calls run at once
    results = await asyncio.gather(
        *(call_device(user_id=user.id, action="insert", table="clients", data={"name": str(i)}) for i in range(20))
    )

    # then each caller got the row it asked for
    assert [r["row"]["name"] for r in results] == [str(i) for i in range(20)]


async def test_most_recently_seen_device_is_chosen_when_none_is_named(devices, user):
    # given two devices of the same user
    older = await devices(user, device_id="older")
    newer = await devices(user, device_id="newer")

    # when
    await call_device(user_id=user.id, action="select", table="tasks")

    # then
    assert older.tool_calls == []
    assert len(newer.tool_calls) == 1
    assert [d.device_id for d in await devices_online(user_id=user.id)] == ["newer", "older"]


async def test_send_to_device_delivers_a_validated_server_frame(devices, user) -> None:
    # given a server frame type another app declared
    from typing import Literal

    from apps.devices.frames import OutgoingFrameModel, _registered_outgoing, register_outgoing_frame

    class Nudge(OutgoingFrameModel):
        type: Literal["nudge_test"] = "nudge_test"
        run_id: str
        paths: list[str]

    register_outgoing_frame(Nudge)
    try:
        client = await devices(user)
        frame = {"type": "nudge_test", "run_id": "r1", "paths": ["/tmp"]}

        # when
        used = await send_to_device(user_id=user.id, frame=frame)

        # then
        assert used == client.device_id
        assert await client.next_frame() == frame
        with pytest.raises(Exception, match="nudge_test"):
            await send_to_device(user_id=user.id, frame={"type": "nudge_test", "run_id": "r2"})
    finally:
        _registered_outgoing.pop("nudge_test", None)


async def test_invalid_action_is_rejected_before_anything_is_sent(devices, user):
    client = await devices(user)
    with pytest.raises(Exception, match="Invalid tool call"):
        await call_device(user_id=user.id, action="drop_table", table="tasks")
    assert client.tool_calls == []


async def test_an_answer_after_several_liveness_checks_still_reaches_the_remote_caller(devices, user, settings):
    # given a device reached from another loop that answers only after several liveness checks
    settings.DEVICE_CALL_LIVENESS_CHECK = 0.05
    client = await devices(user)

    async def slow(call):
        await asyncio.sleep(0.4)
        return await client.run_tool(call)

    client.tool_handler = slow

    # when the server calls it, twice in a row
    first = await call_device(user_id=user.id, action="get", table="tasks", data={"id": "nope"})
    second = await call_device(user_id=user.id, action="get", table="tasks", data={"id": "nope"})

    # then each waits past its checks and gets the device's answer
    assert first == second == {"row": None}
    assert len(client.tool_calls) == 2


def _tool_call_count(route: str, outcome: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    from apps.core import metrics

    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for sample in family.samples:
            if sample.name == "adiuva_tool_call_duration_seconds_count" and sample.labels == {
                "route": route,
                "outcome": outcome,
            }:
                return sample.value
    return 0.0


async def test_every_call_is_timed_by_route_and_outcome(devices, user, device_server):
    # given a device, and the tool-call histogram's counts before
    client = await devices(user)
    own_ok, remote_ok = _tool_call_count("own_process", "ok"), _tool_call_count("other_process", "ok")
    remote_failed = _tool_call_count("other_process", "DeviceToolError")

    async def on_server_loop():
        return await call_device(user_id=user.id, device_id=client.device_id, action="select", table="tasks")

    # when one call runs on the socket's own loop, one from here succeeds and one fails on the device
    await asyncio.to_thread(device_server.run, on_server_loop())
    await call_device(user_id=user.id, device_id=client.device_id, action="select", table="tasks")
    with pytest.raises(DeviceToolError):
        await call_device(user_id=user.id, device_id=client.device_id, action="select", table="no_such_table")

    # then each is counted once under its route and outcome
    assert _tool_call_count("own_process", "ok") - own_ok == 1
    assert _tool_call_count("other_process", "ok") - remote_ok == 1
    assert _tool_call_count("other_process", "DeviceToolError") - remote_failed == 1
