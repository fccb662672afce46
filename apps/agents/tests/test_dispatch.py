"""The scheduler tick: due agents fire in their owner's time zone, exactly once, offline devices wait;
the sweeper fails runs whose worker died."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connections

from apps.agents.dispatch import agents_dispatch_due
from apps.agents.models import AgentRunLog, CloudAgentConfig, LocalAgentConfig, RunStatus, RunTrigger
from apps.agents.runs import run_finish, run_lease_renew, run_start, runs_sweep_stale
from apps.agents.selectors import agents_due_for_device
from apps.agents.tasks import agent_run_execute
from apps.core.errors import ApplicationError
from apps.core.testing.threads import run_in_threads

from .conftest import device_online, device_row_online, make_cloud, make_local

pytestmark = pytest.mark.django_db

UTC = dt.UTC


def _utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def test_an_agent_fires_at_nine_in_its_owners_time_zone(make_user):
    # given a Berlin user's 09:00 cloud agent, due 2026-06-01 07:00 UTC (09:00 CEST)
    user = make_user(time_zone="Europe/Berlin")
    config = make_cloud(user, cron="0 9 * * *", next_run_at=_utc(2026, 6, 1, 7, 0))

    # when the scheduler ticks a minute before, then at the due time
    early = agents_dispatch_due(now=_utc(2026, 6, 1, 6, 59, 50))
    on_time = agents_dispatch_due(now=_utc(2026, 6, 1, 7, 0, 5))

    # then nothing runs early; at 09:00 Berlin one scheduled run starts and the next is tomorrow 09:00 Berlin
    assert early.runs_created == 0
    assert on_time.runs_created == 1
    run = AgentRunLog.objects.get(agent_id=config.id)
    assert (run.status, run.trigger, run.scheduled_for) == (
        RunStatus.RUNNING,
        RunTrigger.SCHEDULE,
        _utc(2026, 6, 1, 7, 0),
    )
    assert run.lease_expires_at > _utc(2026, 6, 1, 7, 0, 5)
    config.refresh_from_db()
    assert config.next_run_at == _utc(2026, 6, 2, 7, 0)
    assert config.last_run_at == _utc(2026, 6, 1, 7, 0, 5)


def test_a_schedule_keeps_local_time_over_the_spring_forward(make_user):
    # given a New York 09:00 agent on the Saturday before the change (EST, 14:00 UTC)
    user = make_user(time_zone="America/New_York")
    config = make_cloud(user, cron="0 9 * * *", next_run_at=_utc(2026, 3, 7, 14, 0))

    agents_dispatch_due(now=_utc(2026, 3, 7, 14, 0, 1))
    config.refresh_from_db()

    # then Sunday's run is 09:00 EDT = 13:00 UTC
    assert config.next_run_at == _utc(2026, 3, 8, 13, 0)


def test_a_local_agent_with_an_online_device_runs_on_that_device(make_user):
    user = make_user()
    device_online(user, "laptop-1")
    config = make_local(user, next_run_at=_utc(2026, 6, 1, 9, 0))

    result = agents_dispatch_due(now=_utc(2026, 6, 1, 9, 0, 3))

    assert result.runs_created == 1
    assert AgentRunLog.objects.get(agent_id=config.id).device_id == "laptop-1"


def test_a_device_row_without_a_live_socket_is_offline_for_the_scheduler(make_user):
    # given a device whose database row still says online, but no socket holds it anywhere
    user = make_user()
    device_row_online(user, "laptop-1")
    config = make_local(user, next_run_at=_utc(2026, 6, 1, 9, 0))

    # when the scheduler reaches its agent
    result = agents_dispatch_due(now=_utc(2026, 6, 1, 9, 0, 3))

    # then the presence index decides: the run waits for the device instead of starting on nothing
    assert (result.runs_created, result.waiting_for_device) == (0, 1)
    assert not AgentRunLog.objects.filter(agent_id=config.id).exists()


def test_an_offline_device_leaves_the_run_owed_until_it_connects(make_user):
    # given a local agent whose device is offline (another device of the user is online)
    user = make_user()
    device_online(user, "desktop-2")
    config = make_local(user, device_id="laptop-1", next_run_at=_utc(2026, 6, 1, 9, 0))

    # when the scheduler reaches it, twice
    first = agents_dispatch_due(now=_utc(2026, 6, 1, 9, 0, 3))
    again = agents_dispatch_due(now=_utc(2026, 6, 1, 9, 0, 13))

    # then no run is created or failed; the run is owed, and the schedule moved on (no rescans)
    assert (first.runs_created, first.waiting_for_device) == (0, 1)
    assert again.claimed == 0
    assert not AgentRunLog.objects.filter(agent_id=config.id).exists()
    config.refresh_from_db()
    assert config.waiting_for_device_since == _utc(2026, 6, 1, 9, 0)
    assert config.next_run_at == _utc(2026, 6, 2, 9, 0)

    # when the device says hello, its owed agent is due for it (and not for another device)
    due = agents_due_for_device(user_id=user.id, device_id="laptop-1", now=_utc(2026, 6, 1, 12, 0))
    assert [c.id for c in due] == [config.id]
    assert agents_due_for_device(user_id=user.id, device_id="desktop-2", now=_utc(2026, 6, 1, 12, 0)) == []

    # and starting it settles the debt; a running agent is no longer due
    run_start(config=due[0], trigger=RunTrigger.DEVICE_CONNECT, enqueue=False)
    config.refresh_from_db()
    assert config.waiting_for_device_since is None
    assert agents_due_for_device(user_id=user.id, device_id="laptop-1", now=_utc(2026, 6, 1, 12, 0)) == []


def test_a_tick_delivered_twice_creates_no_second_run(make_user):
    # given a run already created for this due time (e.g. an earlier tick whose schedule update was lost)
    user = make_user()
    config = make_cloud(user, next_run_at=_utc(2026, 6, 1, 9, 0))
    earlier = run_start(config=config, trigger=RunTrigger.SCHEDULE, scheduled_for=_utc(2026, 6, 1, 9, 0), enqueue=False)
    run_finish(run_id=earlier.id, status=RunStatus.SUCCESS)

    # when the tick runs for the same due time
    result = agents_dispatch_due(now=_utc(2026, 6, 1, 9, 0, 2))

    # then the unique (agent, due time) keeps one run, and the schedule still advances
    assert (result.claimed, result.runs_created) == (1, 0)
    assert AgentRunLog.objects.filter(agent_id=config.id).count() == 1
    config.refresh_from_db()
    assert config.next_run_at == _utc(2026, 6, 2, 9, 0)


def test_an_agent_still_running_skips_this_occurrence(make_user):
    user = make_user()
    config = make_cloud(user, cron="*/5 * * * *", next_run_at=_utc(2026, 6, 1, 9, 5))
    running = run_start(config=config, trigger=RunTrigger.MANUAL, enqueue=False)

    result = agents_dispatch_due(now=_utc(2026, 6, 1, 9, 5, 1))

    assert (result.runs_created, result.skipped_running) == (0, 1)
    assert list(AgentRunLog.objects.filter(agent_id=config.id).values_list("id", flat=True)) == [running.id]


def test_disabled_and_manual_only_agents_never_fire(make_user):
    user = make_user()
    make_cloud(user, next_run_at=_utc(2026, 6, 1, 9, 0), enabled=False)
    make_cloud(user, cron="", next_run_at=None)

    assert agents_dispatch_due(now=_utc(2026, 6, 2, 0, 0)).claimed == 0


def test_missed_occurrences_coalesce_into_one_run(make_user):
    # given an hourly agent last due 5 hours ago (the scheduler was down)
    user = make_user()
    config = make_cloud(user, cron="0 * * * *", next_run_at=_utc(2026, 6, 1, 4, 0))

    result = agents_dispatch_due(now=_utc(2026, 6, 1, 9, 30))

    assert result.runs_created == 1
    config.refresh_from_db()
    assert config.next_run_at == _utc(2026, 6, 1, 10, 0)


def test_a_tick_drains_every_due_agent_in_batches(make_user):
    users = [make_user() for _ in range(3)]
    for user in users:
        for _ in range(4):
            make_cloud(user, next_run_at=_utc(2026, 6, 1, 9, 0))
            make_local(user, next_run_at=_utc(2026, 6, 1, 9, 0))
        device_online(user)

    result = agents_dispatch_due(now=_utc(2026, 6, 1, 9, 0, 1), batch_size=5)

    assert result.runs_created == 24
    assert result.batches >= 5
    assert AgentRunLog.objects.count() == 24


def test_runs_are_queued_only_after_commit(make_user, django_capture_on_commit_callbacks):
    user = make_user()
    make_cloud(user, next_run_at=_utc(2026, 6, 1, 9, 0))

    with django_capture_on_commit_callbacks() as callbacks:
        result = agents_dispatch_due(now=_utc(2026, 6, 1, 9, 0, 1))

    assert result.runs_created == 1
    assert len(callbacks) >= 1


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_dispatchers_create_exactly_one_run_per_due_agent(make_user):
    # given 60 due cloud agents and 20 due local agents with an online device
    user = make_user(tier="power")
    device_online(user)
    cloud = [make_cloud(user, next_run_at=_utc(2026, 6, 1, 9, 0)) for _ in range(60)]
    local = [make_local(user, next_run_at=_utc(2026, 6, 1, 9, 0)) for _ in range(20)]
    barrier = threading.Barrier(2)
    results = []

    def tick() -> None:
        try:
            barrier.wait()
            results.append(agents_dispatch_due(now=_utc(2026, 6, 1, 9, 0, 1), batch_size=7))
        finally:
            connections.close_all()

    # when two dispatchers (own threads, own connections) tick at once
    run_in_threads(tick, 2)

    # then every due agent has exactly one run and both ticks shared the work
    assert len(results) == 2
    assert sum(r.runs_created for r in results) == 80
    assert AgentRunLog.objects.count() == 80
    assert set(AgentRunLog.objects.values_list("agent_id", flat=True)) == {c.id for c in cloud + local}
    assert not CloudAgentConfig.objects.filter(next_run_at__lte=_utc(2026, 6, 1, 9, 0, 1)).exists()
    assert not LocalAgentConfig.objects.filter(next_run_at__lte=_utc(2026, 6, 1, 9, 0, 1)).exists()


@pytest.mark.django_db(transaction=True)
def test_a_manual_trigger_racing_a_tick_never_runs_an_agent_twice(make_user) -> None:
    user = make_user()
    config = make_cloud(user, next_run_at=_utc(2026, 6, 1, 9, 0))
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def manual() -> None:
        try:
            barrier.wait()
            run_start(config=config, trigger=RunTrigger.MANUAL, enqueue=False)
            outcomes.append("started")
        except ApplicationError as exc:
            outcomes.append(exc.code)
        finally:
            connections.close_all()

    def tick() -> None:
        try:
            barrier.wait()
            outcomes.append(f"tick:{agents_dispatch_due(now=_utc(2026, 6, 1, 9, 0, 1)).runs_created}")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=manual), threading.Thread(target=tick)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert AgentRunLog.objects.filter(agent_id=config.id, status=RunStatus.RUNNING).count() == 1
    assert sorted(outcomes) in (["started", "tick:0"], ["agent_already_running", "tick:1"])


def test_the_sweeper_fails_a_run_whose_worker_died(make_user):
    # given a run whose executor died: its lease ran out
    user = make_user()
    config = make_cloud(user)
    run = run_start(config=config, trigger=RunTrigger.MANUAL, now=_utc(2026, 6, 1, 9, 0), enqueue=False)
    alive = run_start(config=make_cloud(user), trigger=RunTrigger.MANUAL, enqueue=False)

    # when the sweeper runs after the lease
    swept = runs_sweep_stale(now=run.lease_expires_at + dt.timedelta(seconds=1))

    # then that run is an error saying why; a run with a live lease is untouched; the agent can run again
    assert swept == 1
    run.refresh_from_db()
    assert run.status == RunStatus.ERROR
    assert run.errors == [f"worker lost: lease expired at {run.lease_expires_at.isoformat()}"]
    assert run.completed_at is not None
    alive.refresh_from_db()
    assert alive.status == RunStatus.RUNNING
    assert run_start(config=config, trigger=RunTrigger.MANUAL, enqueue=False).status == RunStatus.RUNNING


def test_a_renewed_lease_keeps_the_run_alive_and_a_swept_run_stays_finished(make_user):
    user = make_user()
    run = run_start(config=make_cloud(user), trigger=RunTrigger.MANUAL, now=_utc(2026, 6, 1, 9, 0), enqueue=False)

    assert run_lease_renew(run_id=run.id, now=_utc(2026, 6, 1, 9, 8))
    assert runs_sweep_stale(now=_utc(2026, 6, 1, 9, 12)) == 0
    assert runs_sweep_stale(now=_utc(2026, 6, 1, 9, 30)) == 1
    # the executor that comes back late can neither renew nor overwrite the outcome
    assert not run_lease_renew(run_id=run.id)
    assert run_finish(run_id=run.id, status=RunStatus.SUCCESS, items_created=5).status == RunStatus.ERROR


def test_due_for_device_covers_undispatched_due_agents_but_not_disabled_or_future_ones(make_user):
    user = make_user()
    due = make_local(user, next_run_at=_utc(2026, 6, 1, 8, 0))
    make_local(user, next_run_at=_utc(2026, 6, 1, 10, 0))
    make_local(user, next_run_at=_utc(2026, 6, 1, 8, 0), enabled=False)
    make_local(user, next_run_at=_utc(2026, 6, 1, 8, 0), device_id="other-device")

    found = agents_due_for_device(user_id=user.id, device_id="laptop-1", now=_utc(2026, 6, 1, 9, 0))

    assert [c.id for c in found] == [due.id]


def test_the_executor_task_leaves_a_run_that_is_no_longer_running_alone(make_user):
    # given a run the sweeper already failed (its first worker died)
    user = make_user()
    run = run_start(config=make_cloud(user), trigger=RunTrigger.MANUAL, now=_utc(2026, 6, 1, 9, 0), enqueue=False)
    runs_sweep_stale(now=_utc(2026, 6, 2, 0, 0))

    # when its queued execution is finally delivered
    agent_run_execute(str(run.id))

    # then nothing runs and the sweeper's reason stays
    run.refresh_from_db()
    assert run.status == RunStatus.ERROR
    assert run.errors[0].startswith("worker lost: lease expired at")
    assert "executor not installed" not in run.errors
