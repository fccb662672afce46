"""``agent_data`` / ``agent_complete`` the server refuses: a stable error code, the socket stays
open, nothing is stored or forwarded."""

from __future__ import annotations

import uuid

import pytest
from asgiref.sync import sync_to_async

from apps.agents.local_runs import run_channel
from apps.agents.models import AgentRunLog, OutboxItem, RunStatus
from apps.devices import handlers, streams
from apps.devices.channel_layer import loop_layer
from apps.devices.tests.conftest import frames_until_end, wait_until

from .conftest import start_run

pytestmark = pytest.mark.django_db(transaction=True)

FILE = {"path": "/tmp/a.md", "name": "a.md", "content": "Call Anna", "metadata": {}}


async def still_open(client) -> bool:
    await client.send({"type": "ping"})
    return (await client.next_frame()) == {"type": "pong"}


async def nothing_forwarded(run_id) -> bool:
    layer = loop_layer()
    try:
        import asyncio

        await asyncio.wait_for(layer.receive(run_channel(run_id)), 0.3)
    except TimeoutError:
        return True
    return False


async def test_malformed_agent_data_is_an_invalid_frame(devices, user):
    client = await devices(user)
    await client.send({"type": "agent_data", "run_id": str(uuid.uuid4()), "files": "everything"})
    frame = await client.next_frame()
    assert frame["code"] == "invalid_frame"
    assert "files" in frame["message"]
    assert await still_open(client)


async def test_agent_data_over_the_frame_limit_is_refused(devices, user, settings):
    settings.DEVICE_MAX_FRAME_BYTES = 2000
    client = await devices(user)
    big = {**FILE, "content": "x" * 5000}
    await client.send({"type": "agent_data", "run_id": str(uuid.uuid4()), "files": [big]})
    assert (await client.next_frame())["code"] == "frame_too_large"
    assert await still_open(client)


@pytest.mark.parametrize("run_id", ["not-a-uuid", "5d0c8a4e-3f1b-4c2d-9e7a-6b8f1a2c3d4e"])  # a fixed id no run has
async def test_unknown_run_id_is_agent_run_not_found(devices, user, run_id):
    client = await devices(user)
    await client.send({"type": "agent_data", "run_id": run_id, "files": [FILE]})
    frame = await client.next_frame()
    assert (frame["type"], frame["code"]) == ("error", "agent_run_not_found")
    assert await still_open(client)


async def test_another_users_run_looks_unknown_and_gets_nothing(devices, user, make_user, make_local_config, tmp_path):
    # given a running run of another user
    other = await sync_to_async(make_user)("mallory@example.com")
    config = await make_local_config("their-laptop", [str(tmp_path)], owner=other)
    run = await start_run(config)
    client = await devices(user, device_id="their-laptop")

    # when this user sends data and a completion for it
    await client.send({"type": "agent_data", "run_id": str(run.id), "files": [FILE]})
    first = await client.next_frame()
    await client.send({"type": "agent_complete", "run_id": str(run.id), "files_read": 1, "errors": []})
    second = await client.next_frame()

    # then both are refused as unknown, nothing reaches the run, and it is still running
    assert (first["code"], second["code"]) == ("agent_run_not_found", "agent_run_not_found")
    assert await nothing_forwarded(run.id)
    assert (await sync_to_async(AgentRunLog.objects.get)(id=run.id)).status == RunStatus.RUNNING
    assert await still_open(client)


async def test_data_for_a_finished_run_is_refused(devices, user, make_local_config, tmp_path):
    client = await devices(user, device_id="laptop")
    config = await make_local_config("laptop", [str(tmp_path)])
    run = await start_run(config)
    await sync_to_async(AgentRunLog.objects.filter(id=run.id).update)(status=RunStatus.SUCCESS)

    await client.send({"type": "agent_data", "run_id": str(run.id), "files": [FILE]})
    frame = await client.next_frame()

    assert frame["code"] == "agent_run_finished"
    assert await nothing_forwarded(run.id)
    assert await sync_to_async(OutboxItem.objects.count)() == 0
    assert await still_open(client)


async def test_data_from_another_device_of_the_user_is_refused(devices, user, make_local_config, tmp_path):
    config = await make_local_config("laptop", [str(tmp_path)])
    run = await start_run(config)
    desktop = await devices(user, device_id="desktop")

    await desktop.send({"type": "agent_data", "run_id": str(run.id), "files": [FILE]})

    assert (await desktop.next_frame())["code"] == "agent_run_wrong_device"
    assert await nothing_forwarded(run.id)


async def test_accepted_pieces_reach_the_run_in_order(devices, user, make_local_config, tmp_path):
    # given a running run sent to this device
    client = await devices(user, device_id="laptop")
    config = await make_local_config("laptop", [str(tmp_path)])
    run = await start_run(config)

    # when the device sends three pieces and its completion back to back
    for n in range(3):
        await client.send({"type": "agent_data", "run_id": str(run.id), "files": [{**FILE, "name": f"{n}.md"}]})
    await client.send({"type": "agent_complete", "run_id": str(run.id), "files_read": 3, "errors": ["x: unreadable"]})

    # then the run's channel holds them in the order sent
    layer = loop_layer()
    received = [await layer.receive(run_channel(run.id)) for _ in range(4)]
    assert [m["type"] for m in received] == ["agents.data"] * 3 + ["agents.complete"]
    assert [m["files"][0]["name"] for m in received[:3]] == ["0.md", "1.md", "2.md"]
    assert received[3]["errors"] == ["x: unreadable"]


async def test_a_finished_chat_stays_resumable_after_many_agent_data_pieces(devices, user, settings):
    # given a chat request that ran to its end, and a per-user log retention smaller than the pieces
    settings.DEVICE_STREAM_RETAIN_PER_USER = 32

    async def floating(session, frame):
        await session.send({"type": "stream_start", "request_id": frame.request_id})
        await session.send({"type": "stream_end", "request_id": frame.request_id})

    saved = handlers.get_handler("floating_request")
    handlers.register_request_handler("floating_request", floating, replace=True)
    try:
        client = await devices(user)
        await client.send(
            {"type": "floating_request", "request_id": "chat-1", "message": "hi", "scope": {"type": "tasks"}}
        )
        await frames_until_end(client, "chat-1")
        await wait_until(lambda: streams.stream_get(user_id=str(user.id), request_id="chat-1") is None)

        # when the device sends 100 agent_data pieces (here for a run that does not exist)
        for _ in range(100):
            await client.send({"type": "agent_data", "run_id": str(uuid.uuid4()), "files": [FILE]})
        for _ in range(100):
            assert (await client.next_frame())["code"] == "agent_run_not_found"

        # then the chat still answers resume with its frames, not stream_expired
        await client.send({"type": "resume", "request_id": "chat-1", "after_seq": 0})
        resumed = await frames_until_end(client, "chat-1")
        assert [f["type"] for f in resumed] == ["stream_start", "stream_end"]
    finally:
        if saved is not None:
            handlers.register_request_handler("floating_request", saved.handler, replace=True)


@pytest.mark.parametrize("bad", ["\ud800", "\u0000", "x\udfffy"])
async def test_agent_complete_errors_no_database_can_store_are_an_invalid_frame(
    devices, user, make_local_config, tmp_path, bad
):
    # given a running run sent to this device
    client = await devices(user, device_id="laptop")
    config = await make_local_config("laptop", [str(tmp_path)])
    run = await start_run(config)

    # when the device completes it with an error text holding NUL or an unpaired surrogate
    await client.send({"type": "agent_complete", "run_id": str(run.id), "files_read": 1, "errors": [bad]})

    # then the frame is refused, nothing reaches the run, and the socket stays open
    frame = await client.next_frame()
    assert (frame["code"], "errors" in frame["message"]) == ("invalid_frame", True)
    assert await nothing_forwarded(run.id)
    assert await still_open(client)
