"""A device's hello: agents that came due while it was away start (and only on their own device),
through the real connect hook, ``run_start`` and the ``agent_run_execute`` Celery task (eager)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from apps.agents.models import AgentRunLog, RunStatus, RunTrigger

from .conftest import one_task_per_file, rows, wait_until, write_files

pytestmark = pytest.mark.django_db(transaction=True)


async def runs_of(config) -> list[AgentRunLog]:
    return await sync_to_async(lambda: list(AgentRunLog.objects.filter(agent_id=config.id)))()


async def finished(config) -> bool:
    runs = await runs_of(config)
    return bool(runs) and all(r.status != RunStatus.RUNNING for r in runs)


async def test_an_overdue_local_run_starts_when_its_device_says_hello(
    devices, user, llm, make_local_config, tmp_path, celery_eager
):
    # given an agent of device "laptop" that came due an hour ago while the laptop was off
    write_files(tmp_path, 2)
    config = await make_local_config("laptop", [str(tmp_path)], next_run_at=timezone.now() - timedelta(hours=1))
    llm.fallback = one_task_per_file

    # when the laptop connects
    client = await devices(user, device_id="laptop")
    await wait_until(lambda: finished(config), timeout=15)

    # then the run started on connect and its rows are on the laptop
    (run,) = await runs_of(config)
    assert (run.trigger, run.status, run.device_id, run.items_created) == (
        RunTrigger.DEVICE_CONNECT,
        RunStatus.SUCCESS,
        "laptop",
        2,
    )
    assert len(rows(client)) == 2


async def test_an_agent_bound_to_device_a_does_not_start_when_device_b_connects(
    devices, user, llm, make_local_config, tmp_path, celery_eager
):
    # given an overdue agent bound to device A
    write_files(tmp_path, 1)
    config = await make_local_config("device-a", [str(tmp_path)], next_run_at=timezone.now() - timedelta(hours=1))
    llm.fallback = one_task_per_file

    # when device B connects, then device A
    device_b = await devices(user, device_id="device-b")
    device_a = await devices(user, device_id="device-a")
    await wait_until(lambda: finished(config), timeout=15)

    # then exactly one run, on device A; B was never asked
    (run,) = await runs_of(config)
    assert (run.device_id, run.status) == ("device-a", RunStatus.SUCCESS)
    assert device_b.agent_runs == []
    assert rows(device_b) == []
    assert len(rows(device_a)) == 1


async def test_a_run_already_going_is_not_started_twice_on_hello(
    devices, user, llm, make_local_config, tmp_path, celery_eager
):
    # given an overdue agent whose run is already running (e.g. a second socket of the device)
    from apps.agents.device_hello import due_runs_start

    from .conftest import start_run

    config = await make_local_config("laptop", [str(tmp_path)], next_run_at=timezone.now() - timedelta(hours=1))
    running = await start_run(config)

    # when the device's hello looks for due agents
    started = await sync_to_async(due_runs_start)([(str(user.id), "laptop")])

    # then nothing new starts
    assert started == set()
    assert [r.id for r in await runs_of(config)] == [running.id]
