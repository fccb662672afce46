"""``agent_progress`` during a real local run over the socket: sent to the user's sockets that
negotiated the capability (throttled per run, the final state always last), never to a seed client."""

from __future__ import annotations

import itertools

import pytest
from asgiref.sync import sync_to_async

from apps.agents import progress
from apps.agents.models import AgentRunLog, RunStatus
from apps.agents.run_pipeline import RunErrors, finish
from apps.devices.tests.conftest import wait_until
from apps.devices.tests.test_capabilities import capable_of

from .conftest import execute, one_task_per_file, start_run, write_files

pytestmark = pytest.mark.django_db(transaction=True)

COUNTERS = ("files_read", "items_extracted", "items_delivered")
PHASES = ["reading", "extracting", "delivering", "done"]


async def test_a_capable_socket_sees_the_run_progress_to_its_final_state(
    devices, user, llm, make_local_config, tmp_path
):
    # given a capable device bound to an agent over three files
    write_files(tmp_path, 3)
    client = await devices(user, capabilities=["agent_progress"])
    assert (await client.next_frame())["type"] == "device_welcome"
    await capable_of(user)
    config = await make_local_config(client.device_id, [str(tmp_path)])
    llm.fallback = one_task_per_file

    # when the run executes
    run = await execute(await start_run(config))
    assert run.status == RunStatus.SUCCESS
    await wait_until(lambda: client.progress and client.progress[-1]["phase"] == "done")

    # then every frame names the run and the agent, counters and phases only move forward
    frames = client.progress
    assert {(f["run_id"], f["agent_id"]) for f in frames} == {(str(run.id), str(config.id))}
    for earlier, later in itertools.pairwise(frames):
        assert all(earlier[c] <= later[c] for c in COUNTERS), frames
        assert PHASES.index(earlier["phase"]) <= PHASES.index(later["phase"]), frames
    # and the final frame, sent last and once, has the run's totals
    assert frames[-1] == {
        "type": "agent_progress",
        "run_id": str(run.id),
        "agent_id": str(config.id),
        "phase": "done",
        "files_read": 3,
        "items_extracted": 3,
        "items_delivered": 3,
    }
    assert [f["phase"] for f in frames].count("done") == 1
    # and the welcome came before any of it
    assert client.received[0] == "device_welcome"


async def test_a_seed_socket_gets_no_welcome_and_no_progress_while_a_run_works(
    devices, user, llm, make_local_config, tmp_path
):
    # given a seed client (no capabilities) running the agent, and a capable one of the same user
    write_files(tmp_path, 2)
    seed = await devices(user)
    watcher = await devices(user, capabilities=["agent_progress"])
    await capable_of(user)
    config = await make_local_config(seed.device_id, [str(tmp_path)])
    llm.fallback = one_task_per_file

    # when the run executes
    await execute(await start_run(config))
    await wait_until(lambda: watcher.progress and watcher.progress[-1]["phase"] == "done")
    await seed.send({"type": "ping"})
    assert await seed.next_frame() == {"type": "pong"}

    # then the seed client got exactly the seed's frames: agent_run, its inserts, the pong
    assert seed.received == ["agent_run", "tool_call", "tool_call", "pong"]
    assert seed.progress == []
    assert seed.welcome is None
    # while the capable socket of the same user followed the run
    assert watcher.progress[-1]["items_delivered"] == 2


async def test_progress_is_throttled_per_run_and_the_final_state_is_always_sent(
    devices, user, llm, make_local_config, tmp_path, monkeypatch
):
    # given a throttle interval longer than the run, and a run over twenty files
    monkeypatch.setattr(progress, "MIN_INTERVAL", 3600.0)
    write_files(tmp_path, 20)
    client = await devices(user, capabilities=["agent_progress"])
    await capable_of(user)
    config = await make_local_config(client.device_id, [str(tmp_path)])
    llm.fallback = one_task_per_file

    # when the run executes
    await execute(await start_run(config))
    await wait_until(lambda: client.progress and client.progress[-1]["phase"] == "done")

    # then the first change went out at once, every later one waited, and the final state came last
    assert [f["phase"] for f in client.progress] == ["reading", "done"]
    assert client.progress[0]["files_read"] == 1
    assert {c: client.progress[-1][c] for c in COUNTERS} == dict.fromkeys(COUNTERS, 20)


async def test_the_final_state_counts_the_items_a_hello_flush_delivered_while_the_run_ran(
    user, make_local_config, tmp_path
):
    # given a run that delivered one item itself, while its device's hello flush delivered two more
    config = await make_local_config("laptop", [str(tmp_path)])
    run = await start_run(config)
    await sync_to_async(AgentRunLog.objects.filter(id=run.id).update)(items_created=3)
    tracker = progress.RunProgress(user_id=user.id, run_id=run.id, agent_id=config.id)
    tracker.update(items_delivered=1)

    # when the run finishes
    await finish(run, processed=3, errors=RunErrors(), progress=tracker)

    # then its final progress says three were delivered, as its log does
    assert (tracker.phase, tracker.items_delivered) == ("done", 3)


async def test_the_first_change_goes_out_at_once_on_a_host_that_booted_less_than_an_interval_ago(monkeypatch):
    # given a monotonic clock that is young (it counts from the host's boot: 10 s) and an interval past it
    monkeypatch.setattr(progress, "MIN_INTERVAL", 60.0)
    monkeypatch.setattr(progress.time, "monotonic", lambda: 10.0)
    broadcast: list[dict] = []

    async def to_the_user(*, user_id, frame, capability) -> None:
        broadcast.append(frame)

    monkeypatch.setattr(progress, "user_frame_broadcast", to_the_user)
    run = progress.RunProgress(user_id="u", run_id="r", agent_id="a")

    # when the run reads its first file, and a second one at once
    run.update(files_read=1)
    run.update(files_read=1)
    await run.finish()

    # then the first change was sent then and there, the second folded into the final state
    assert [(f["phase"], f["files_read"]) for f in broadcast] == [("reading", 1), ("done", 2)]
