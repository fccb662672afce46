"""The holder's answer to a call from another loop: written to its publishing connection without
waiting for Redis's reply, or, with that connection down, sent once it is open again."""

from __future__ import annotations

import asyncio

from apps.devices.realtime_redis import loop_publisher
from apps.devices.services import call_device
from apps.devices.tests.conftest import SOCKET_DB

pytestmark = SOCKET_DB


async def _close_publisher() -> None:
    await loop_publisher().close()


async def test_answers_reach_the_caller_while_and_after_the_holders_publishing_connection_is_down(
    devices, user, device_server
):
    # given a device held by the server's loop, called once (the server's publishing connection is open)
    client = await devices(user)
    await call_device(user_id=user.id, device_id=client.device_id, action="select", table="tasks")

    # when that connection is closed before each of the next calls is answered
    results = []
    for title in ("a", "b"):
        await asyncio.to_thread(device_server.run, _close_publisher())
        results.append(
            await call_device(
                user_id=user.id, device_id=client.device_id, action="insert", table="tasks", data={"title": title}
            )
        )
    again = await call_device(user_id=user.id, device_id=client.device_id, action="select", table="tasks")

    # then every answer arrived, and the connection opened again carries the next ones
    assert [result["row"]["title"] for result in results] == ["a", "b"]
    assert sorted(row["title"] for row in again["rows"]) == ["a", "b"]
