"""Celery tasks of agents: thin wrappers around services.

STAND-IN with the agreed name (``agent_run_execute``); the owner's version replaces it on merge.
"""

from __future__ import annotations

from celery import shared_task


@shared_task(name="agents.run_execute", acks_late=True)
def agent_run_execute(run_id: str) -> None:
    from .execution import run_execute

    run_execute(run_id=run_id)
