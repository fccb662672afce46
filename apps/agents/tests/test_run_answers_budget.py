"""A local run's own frames are answers to the server's ``agent_run``: the client's frame budget
never drops them, however many pieces the device sends and however many inserts it answers."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from apps.agents import selectors
from apps.agents.frames import AgentRun, AgentRunConfig
from apps.agents.local_runs import MSG_DATA, run_channel
from apps.agents.models import AgentRunLog, AgentType, RunStatus
from apps.agents.selectors import local_runs_running_on
from apps.devices.answer_frames import AnswerBook
from apps.devices.close_codes import DeviceCloseCode
from apps.devices.intake import Accepted, Dropped, frame_intake
from apps.devices.rate_limit import FrameBudget
from apps.devices.services import send_to_device
from apps.devices.tests.conftest import Gate, held_socket

from .conftest import execute, one_task_per_file, rows, start_run, wait_until, write_files

pytestmark = pytest.mark.django_db(transaction=True)

FILE = {"path": "/tmp/a.md", "name": "a.md", "content": "Call Anna", "metadata": {}}


@pytest.fixture
def small_bucket(settings):
    settings.DEVICE_FRAME_RATE = 0.001  # hardly refills during a test
    settings.DEVICE_FRAME_BURST = 4
    settings.DEVICE_FLOOD_CLOSE_AFTER = 20


async def test_every_piece_of_a_run_reaches_it_beyond_the_frame_budget(
    devices, user, llm, make_local_config, tmp_path, small_bucket
):
    # given a device that sends each of ten files as a piece of its own
    write_files(tmp_path, 10)
    client = await devices(user)
    config = await make_local_config(client.device_id, [str(tmp_path)])
    llm.fallback = one_task_per_file

    async def one_file_per_piece(frame: dict[str, Any]) -> None:
        files = sorted(tmp_path.iterdir())
        for path in files:
            piece = [{"path": str(path), "name": path.name, "content": path.read_text(), "metadata": {}}]
            await client.send({"type": "agent_data", "run_id": frame["run_id"], "files": piece})
        await client.send({"type": "agent_complete", "run_id": frame["run_id"], "files_read": len(files)})

    client.agent_handler = one_file_per_piece

    # when the run executes (its inserts answered by the device too), far beyond the bucket of four
    run = await execute(await start_run(config))

    # then every file reached the run and became a task on the device
    assert (run.status, run.items_processed, run.items_created, run.errors) == (RunStatus.SUCCESS, 10, 10, [])
    assert len(rows(client)) == 10
    # and the client's own frames still have their budget
    await client.send({"type": "ping"})
    assert await client.next_frame() == {"type": "pong"}


async def test_pieces_for_a_run_this_socket_was_not_asked_for_spend_the_budget(devices, user, small_bucket):
    # given a socket the server asked for no run
    client = await devices(user)

    # when it floods agent_data for a run of its own making
    for _ in range(40):
        await client.send({"type": "agent_data", "run_id": str(uuid.uuid4()), "files": [FILE]})

    # then the flood is warned about once and closed
    codes = []
    while True:
        frame = await client.next_frame()
        codes.append(frame.get("code"))
        if frame.get("code") == "rate_limited":
            break
    assert await client.wait_closed() == DeviceCloseCode.RATE_LIMITED
    assert codes.count("rate_limited") == 1


def frozen_budget(tokens: int) -> FrameBudget:
    return FrameBudget(rate=1.0, burst=tokens, close_after=100, clock=lambda: 0.0)


def piece(run_id: str, frame_type: str = "agent_data") -> str:
    if frame_type == "agent_complete":
        return json.dumps({"type": frame_type, "run_id": run_id, "files_read": 1})
    return json.dumps({"type": frame_type, "run_id": run_id, "files": [FILE]})


def test_intake_admits_a_runs_pieces_free_until_its_complete_and_then_charges_again():
    # given a socket that sent agent_run for one run and has one token left
    budget = frozen_budget(1)
    calls = AnswerBook()
    calls.frame_sent(AgentRun(run_id="r1", agent_id="a1", config=AgentRunConfig()))

    def take(text: str):
        return frame_intake(text, None, budget=budget, max_bytes=100_000, awaited=calls)

    # when pieces of that run arrive, within the budget and beyond it
    within = take(piece("r1"))
    beyond = [take(piece("r1")) for _ in range(3)]
    complete = take(piece("r1", "agent_complete"))
    # then each is accepted as an answer and the token is still there for the client
    assert all(isinstance(r, Accepted) and r.answer for r in [within, *beyond, complete])
    assert budget.available(1)
    # and a piece of another run, or of the completed one, spends it and then is dropped
    assert isinstance(take(piece("r2")), Accepted)
    assert isinstance(take(piece("r1")), Dropped)


async def test_a_runs_pieces_on_a_reconnected_socket_are_still_answers(devices, user, small_bucket):
    # given a local run of device "laptop", running, whose agent_run went out on a first socket
    run = await sync_to_async(AgentRunLog.objects.create)(
        user=user, agent_id=uuid.uuid4(), agent_type=AgentType.LOCAL, device_id="laptop"
    )
    first = await devices(user, device_id="laptop")
    first.agent_handler = lambda frame: asyncio.sleep(0)
    frame = AgentRun(run_id=str(run.id), agent_id=str(run.agent_id), config=AgentRunConfig())
    await send_to_device(user_id=user.id, frame=frame.model_dump(), device_id="laptop")
    await wait_until(lambda: first.agent_runs)

    # when the laptop reconnects on a second socket (its hello re-opens the run's call there)
    await first.close()
    second = await devices(user, device_id="laptop")
    consumer = held_socket(user, "laptop")
    await wait_until(lambda: consumer.open_calls is not None and ("agent_run", str(run.id)) in consumer.open_calls)
    # and sends the run more pieces than the bucket of four holds, then a ping
    for _ in range(8):
        await second.send({"type": "agent_data", "run_id": str(run.id), "files": [FILE]})
    await second.send({"type": "ping"})

    # then no piece spent the client's budget (the ping is answered, nothing was dropped) and every
    # piece reached the run
    assert await second.next_frame() == {"type": "pong"}
    layer = get_channel_layer()
    for _ in range(8):
        message = await asyncio.wait_for(layer.receive(run_channel(run.id)), timeout=5)
        assert message["type"] == MSG_DATA


async def test_pieces_sent_right_after_a_reconnect_wait_for_the_hellos_running_runs_check(
    devices, user, small_bucket, monkeypatch
):
    # given a running local run of device "laptop", and the hello's check of its running runs held
    # until the test lets it go
    run = await sync_to_async(AgentRunLog.objects.create)(
        user=user, agent_id=uuid.uuid4(), agent_type=AgentType.LOCAL, device_id="laptop"
    )
    gate = Gate()
    checked = selectors.local_runs_running_on

    def held_check(**kwargs):
        gate.passed_in_thread()
        return checked(**kwargs)

    monkeypatch.setattr(selectors, "local_runs_running_on", held_check)

    # when the laptop reconnects and at once sends the run more pieces than its bucket of four holds,
    # then a ping, and the server reads them while the check is still running
    client = await devices(user, device_id="laptop")
    consumer = held_socket(user, "laptop")
    said_hello_at = consumer.last_seen
    for _ in range(8):
        await client.send({"type": "agent_data", "run_id": str(run.id), "files": [FILE]})
    await client.send({"type": "ping"})
    await wait_until(lambda: consumer.last_seen > said_hello_at)
    gate.open()

    # then every piece was accepted as an answer: the ping is answered (nothing was dropped), every
    # piece reached the run, and only the hello and the ping spent the client's budget
    assert await client.next_frame() == {"type": "pong"}
    layer = get_channel_layer()
    for _ in range(8):
        message = await asyncio.wait_for(layer.receive(run_channel(run.id)), timeout=5)
        assert message["type"] == MSG_DATA
    assert consumer.budget.available(1.99)
    assert not consumer.budget.available(2.01)


def test_the_runs_a_hello_re_opens_are_its_own_devices_running_local_runs(user, other_user):
    # given running and finished runs of alice's laptop, a run of her phone, and one of another
    # user's device that has the same name
    def run(owner, device_id: str, **fields) -> str:
        fields.setdefault("agent_type", AgentType.LOCAL)
        return str(AgentRunLog.objects.create(user=owner, agent_id=uuid.uuid4(), device_id=device_id, **fields).id)

    running = run(user, "laptop")
    run(user, "laptop", status=RunStatus.SUCCESS)
    phone = run(user, "phone")
    run(other_user, "laptop")
    run(user, "laptop", agent_type=AgentType.CLOUD)

    # when the hellos of alice's laptop and phone are checked together
    found = local_runs_running_on(devices=[(user.id, "laptop"), (str(user.id), "phone")])

    # then each device gets only its own running local runs
    assert found == {(str(user.id), "laptop"): [running], (str(user.id), "phone"): [phone]}
