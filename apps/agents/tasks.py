"""Celery tasks of agents: thin wrappers around the dispatcher, the sweeper and the executor."""

from __future__ import annotations

from celery import shared_task

from .dispatch import agents_dispatch_due
from .execution import run_execute
from .outbox import outbox_prune
from .runs import RUN_EXECUTE_TASK, RUN_FAN_OUT_TASK, run_lease_renew, runs_sweep_stale


@shared_task(name="agents.dispatch_due", ignore_result=True)
def agents_dispatch_due_task() -> int:
    """The scheduler tick (Celery beat, every 10 s): start every due agent; returns runs created."""
    return agents_dispatch_due().runs_created


@shared_task(name="agents.sweep_stale_runs", ignore_result=True)
def agents_sweep_stale_runs() -> int:
    """Mark runs whose executor died (lease expired) as ``error`` (Celery beat, every minute)."""
    return runs_sweep_stale()


@shared_task(name=RUN_EXECUTE_TASK, acks_late=True, ignore_result=True)
def agent_run_execute(run_id: str) -> None:
    """Execute one run; a run no longer running (swept, finished) is left alone."""
    if not run_lease_renew(run_id=run_id):
        return
    run_execute(run_id=run_id)


@shared_task(name=RUN_FAN_OUT_TASK, acks_late=True, ignore_result=True)
def agent_runs_fan_out(run_ids: list[str]) -> int:
    """Queue one ``agents.run_execute`` per run of a dispatcher batch (off the tick's critical path)."""
    for run_id in run_ids:
        agent_run_execute.delay(run_id)
    return len(run_ids)


@shared_task(name="agents.prune_outbox", ignore_result=True)
def agents_prune_outbox() -> int:
    """Delete outbox rows delivered long ago (Celery beat, daily); returns how many."""
    return outbox_prune()
