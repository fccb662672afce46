"""The scheduler is two beat entries (a 10 s tick and a 1 min sweeper), never one per agent config;
the outbox is pruned nightly."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps
from django_celery_beat.models import PeriodicTask

from apps.agents.tasks import (
    agent_run_execute,
    agents_dispatch_due_task,
    agents_prune_outbox,
    agents_sweep_stale_runs,
)

pytestmark = pytest.mark.django_db

migration = importlib.import_module("apps.agents.migrations.0003_scheduler_beat_tasks")
prune_migration = importlib.import_module("apps.agents.migrations.0004_outbox_prune_beat_task")


def test_the_migration_registers_the_tick_and_the_sweeper_once():
    # given the migration applied (again: it is idempotent)
    migration.create_schedules(apps, None)
    migration.create_schedules(apps, None)

    # then
    tick = PeriodicTask.objects.get(task="agents.dispatch_due")
    sweeper = PeriodicTask.objects.get(task="agents.sweep_stale_runs")
    assert (tick.interval.every, tick.interval.period, tick.enabled) == (10, "seconds", True)
    assert tick.expire_seconds == 30
    assert (sweeper.interval.every, sweeper.interval.period) == (1, "minutes")
    assert {agents_dispatch_due_task.name, agents_sweep_stale_runs.name, agent_run_execute.name} == {
        "agents.dispatch_due",
        "agents.sweep_stale_runs",
        "agents.run_execute",
    }

    # and reversing it removes them
    migration.delete_schedules(apps, None)
    assert not PeriodicTask.objects.filter(task__in=["agents.dispatch_due", "agents.sweep_stale_runs"]).exists()


def test_the_outbox_prune_runs_nightly_once():
    # given its migration applied twice
    prune_migration.create_schedule(apps, None)
    prune_migration.create_schedule(apps, None)

    # then one nightly entry names the task
    (prune,) = PeriodicTask.objects.filter(task=agents_prune_outbox.name)
    assert (prune.crontab.hour, prune.crontab.minute, prune.interval, prune.enabled) == ("3", "17", None, True)
    prune_migration.delete_schedule(apps, None)
    assert not PeriodicTask.objects.filter(task="agents.prune_outbox").exists()
