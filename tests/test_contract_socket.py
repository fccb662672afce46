"""Wire contract of the device socket with the desktop client, pinned (the socket counterpart of
test_contract_rest.py).

A seed client (its ``device_hello {device_id, agent_ids}`` has no ``capabilities``) gets the
seed's frames with the seed's keys and JSON types, and nothing else. Frames added since are
negotiated: ``device_welcome`` answers a hello with ``capabilities``, and ``agent_progress`` /
``usage_notice`` reach only sockets that negotiated them. New keys may be added beside these;
none may disappear or change type.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from apps.billing.usage_notice import LlmUsageNotice
from apps.devices.services import call_device, send_to_device, user_frame_broadcast
from apps.devices.tests.conftest import (  # noqa: F401
    capable_of,
    device_server,
    devices,
    fast_device_settings,
    wait_until,
)
from apps.devices.usage_notice import usage_notice_broadcast

pytestmark = pytest.mark.django_db(transaction=True)

WELCOME = {"type": str, "protocol": int, "capabilities": list}
AGENT_PROGRESS = {
    "type": str,
    "run_id": str,
    "agent_id": str,
    "phase": str,
    "files_read": int,
    "items_extracted": int,
    "items_delivered": int,
}
USAGE_NOTICE = {"type": str, "used": int, "budget": int, "resets_at": str}
TOOL_CALL = {"type": str, "id": str, "action": str, "table": str, "filters": dict}


def assert_shape(body: dict, shape: dict[str, type | tuple[type, ...]]) -> None:
    for key, kind in shape.items():
        assert key in body, f"missing {key!r} in {body}"
        assert isinstance(body[key], kind), f"{key!r} is {type(body[key]).__name__}, expected {kind}"


def progress() -> dict:
    return {
        "type": "agent_progress",
        "run_id": "r",
        "agent_id": "a",
        "phase": "delivering",
        "files_read": 1,
        "items_extracted": 1,
        "items_delivered": 0,
    }


async def test_seed_hello_then_ping_is_answered_by_pong_alone(devices, user):  # noqa: F811
    # the seed's hello: {type, device_id, agent_ids}, nothing more
    client = await devices(user, hello=False, wait=False)
    await client.send({"type": "device_hello", "device_id": "seed-laptop", "agent_ids": []})
    await client.send({"type": "ping"})
    assert await client.next_frame() == {"type": "pong"}
    assert client.received == ["pong"]


async def test_seed_tool_call_shape(devices, user):  # noqa: F811
    client = await devices(user)
    result = await call_device(
        user_id=user.id, device_id=client.device_id, action="select", table="tasks", filters={"status": "todo"}
    )
    assert result == {"rows": []}
    (call,) = client.tool_calls
    assert_shape(call, TOOL_CALL)
    assert (call["type"], call["action"], call["table"], call["filters"]) == (
        "tool_call",
        "select",
        "tasks",
        {"status": "todo"},
    )


async def test_seed_socket_never_gets_a_negotiated_frame(devices, user):  # noqa: F811
    client = await devices(user)
    await send_to_device(user_id=user.id, device_id=client.device_id, frame=progress())
    await user_frame_broadcast(user_id=user.id, frame=progress(), capability="agent_progress")
    await client.send({"type": "ping"})
    assert await client.next_frame() == {"type": "pong"}
    assert client.received == ["pong"]


async def test_device_welcome_shape(devices, user):  # noqa: F811
    client = await devices(user, capabilities=["agent_progress", "usage_notice", "from_the_future"])
    welcome = await client.next_frame()
    assert_shape(welcome, WELCOME)
    assert welcome == {"type": "device_welcome", "protocol": 2, "capabilities": ["agent_progress", "usage_notice"]}


async def test_a_newer_hello_with_unknown_keys_is_accepted(devices, user):  # noqa: F811
    client = await devices(user, hello=False, wait=False)
    await client.send_raw(
        json.dumps({"type": "device_hello", "device_id": "next-laptop", "capabilities": [], "locale": "de"})
    )
    assert (await client.next_frame())["type"] == "device_welcome"


async def test_agent_progress_shape(devices, user):  # noqa: F811
    client = await devices(user, capabilities=["agent_progress"])
    await capable_of(user)
    assert await user_frame_broadcast(user_id=user.id, frame=progress(), capability="agent_progress") == 1
    await wait_until(lambda: client.progress)
    assert_shape(client.progress[0], AGENT_PROGRESS)
    assert client.progress[0]["phase"] in ("reading", "extracting", "delivering", "done")


async def test_usage_notice_shape(devices, user):  # noqa: F811
    client = await devices(user, capabilities=["usage_notice"])
    await capable_of(user, "usage_notice")
    resets_at = dt.datetime(2027, 2, 1, tzinfo=dt.UTC)
    notice = LlmUsageNotice(used=850, budget=1000, resets_at=resets_at)
    assert await usage_notice_broadcast(user_id=user.id, notice=notice)
    await wait_until(lambda: client.notices)
    assert_shape(client.notices[0], USAGE_NOTICE)
    assert dt.datetime.fromisoformat(client.notices[0]["resets_at"]) == resets_at
