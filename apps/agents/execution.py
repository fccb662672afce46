"""Executing one agent run — PLACEHOLDER on this branch.

The real executor (local runs over the device socket: ``agent_run`` / ``agent_data`` /
``agent_complete``; cloud runs through the connectors; LLM extraction; the durable outbox)
lives on the ``agentsrun`` branch, which replaces this whole file. Its contract:

* ``run_execute(*, run_id)`` is synchronous, called by the Celery task ``agents.run_execute``
  for a run created by ``apps.agents.runs.run_start`` or the dispatcher (status ``running``,
  lease set). It renews the lease with ``run_lease_renew`` while it works and finishes the run
  itself with ``run_finish`` (success / partial / error, counters, errors, completed_at).
* ``device_connected(...)`` is the device-hello hook; it starts the runs returned by
  ``apps.agents.selectors.agents_due_for_device``.
"""

from __future__ import annotations

import uuid

from .models import RunStatus
from .runs import run_finish

EXECUTOR_MISSING = "executor not installed"


def run_execute(*, run_id: uuid.UUID | str) -> None:
    """Finish the run as ``error`` saying no executor is installed (placeholder)."""
    run_finish(run_id=uuid.UUID(str(run_id)), status=RunStatus.ERROR, errors=[EXECUTOR_MISSING])


def device_connected(*, user_id: uuid.UUID, device_id: str) -> None:
    """Placeholder for the device-hello hook: nothing to do without an executor."""
