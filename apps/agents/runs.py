"""The life of one agent run: start (one running run per agent), lease renewal, finish, the sweeper.

The executor (``apps.agents.execution``) owns a ``running`` run while its lease lasts and
renews it; a run whose executor died is marked ``error`` by the sweeper once the lease is
over. Finishing is first-writer-wins: a run already finished (or swept) stays as it is.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Iterable
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from apps.core.errors import ApplicationError

from .error_codes import AgentsErrorCode
from .models import (
    AgentRunLog,
    AgentType,
    CloudAgentConfig,
    LocalAgentConfig,
    OutboxItem,
    OutboxStatus,
    RunStatus,
    RunTrigger,
)

logger = logging.getLogger(__name__)

AgentConfigModel = LocalAgentConfig | CloudAgentConfig
FINISHED_STATUSES = frozenset({RunStatus.SUCCESS, RunStatus.PARTIAL, RunStatus.ERROR})
MAX_ERRORS_KEPT = 100
MAX_ERROR_CHARS = 1000

ONE_RUNNING_CONSTRAINT = "agents_run_one_running_per_agent"
ONCE_PER_DUE_TIME_CONSTRAINT = "agents_run_once_per_due_time"


def agent_type_of(config: AgentConfigModel) -> AgentType:
    return AgentType.LOCAL if isinstance(config, LocalAgentConfig) else AgentType.CLOUD


def lease_until(now: dt.datetime) -> dt.datetime:
    return now + dt.timedelta(seconds=settings.AGENTS_RUN_LEASE_SECONDS)


# Celery task names (tasks.py registers them): queued by name, so this module never imports the doors.
RUN_EXECUTE_TASK = "agents.run_execute"
RUN_FAN_OUT_TASK = "agents.run_execute_fan_out"


def run_execute_enqueue(*, run_ids: Iterable[uuid.UUID]) -> None:
    """Queue the executor for committed runs (call from ``transaction.on_commit``).

    One run is one message. A dispatcher batch is ONE fan-out message that a worker splits:
    publishing is a broker round trip each, and the tick must not spend its time on them.
    """
    ids = [str(run_id) for run_id in run_ids]
    if len(ids) == 1:
        current_app.signature(RUN_EXECUTE_TASK, args=[ids[0]]).delay()
    elif ids:
        current_app.signature(RUN_FAN_OUT_TASK, args=[ids]).delay()


def _violated_constraint(exc: IntegrityError) -> str:
    diag = getattr(exc.__cause__, "diag", None)
    return getattr(diag, "constraint_name", "") or ""


def run_start(
    *,
    config: AgentConfigModel,
    trigger: RunTrigger,
    scheduled_for: dt.datetime | None = None,
    device_id: str | None = None,
    now: dt.datetime | None = None,
    enqueue: bool = True,
) -> AgentRunLog:
    """Create the ``running`` row of a run and (after commit) queue its executor.

    A second run of an agent that is already running is refused with 409
    ``agent_already_running`` (the database's partial unique index decides, so two processes
    racing here cannot both win). A started local run settles any owed run of its device.
    """
    now = now or timezone.now()
    agent_type = agent_type_of(config)
    if device_id is None:
        device_id = config.device_id if isinstance(config, LocalAgentConfig) else ""
    with transaction.atomic():
        # Lock order: the config row, then the run insert -- the dispatcher's order. Inserting first
        # and updating the config afterwards deadlocked against a tick claiming the same config.
        list(type(config).objects.select_for_update().filter(id=config.id).values_list("id", flat=True))
        try:
            with transaction.atomic():
                run = AgentRunLog.objects.create(
                    user_id=config.user_id,
                    agent_id=config.id,
                    agent_type=agent_type,
                    status=RunStatus.RUNNING,
                    trigger=trigger,
                    scheduled_for=scheduled_for,
                    device_id=device_id,
                    lease_expires_at=lease_until(now),
                )
        except IntegrityError as exc:
            if _violated_constraint(exc) == ONCE_PER_DUE_TIME_CONSTRAINT:
                raise ApplicationError(
                    AgentsErrorCode.RUN_ALREADY_DISPATCHED,
                    f"The run of this agent due at {scheduled_for} was already started.",
                    status=409,
                ) from None
            raise ApplicationError(
                AgentsErrorCode.AGENT_ALREADY_RUNNING,
                "This agent is already running; wait for that run to finish.",
                status=409,
                extra={"agent_id": str(config.id)},
            ) from None
        updates: dict[str, Any] = {"last_run_at": now}
        if agent_type == AgentType.LOCAL:
            updates["waiting_for_device_since"] = None
        type(config).objects.filter(id=config.id).update(**updates)
        for field, value in updates.items():
            setattr(config, field, value)
        if enqueue:
            transaction.on_commit(lambda: run_execute_enqueue(run_ids=[run.id]))
    return run


def run_lease_renew(*, run_id: uuid.UUID | str, now: dt.datetime | None = None) -> bool:
    """Extend a running run's lease; False when the run is no longer running (the executor should stop)."""
    now = now or timezone.now()
    return bool(
        AgentRunLog.objects.filter(id=run_id, status=RunStatus.RUNNING).update(lease_expires_at=lease_until(now))
    )


def _clean_errors(errors: Iterable[Any]) -> list[str]:
    return [str(error)[:MAX_ERROR_CHARS] for error in list(errors)[:MAX_ERRORS_KEPT]]


def run_finish(
    *,
    run_id: uuid.UUID,
    status: RunStatus,
    items_processed: int = 0,
    items_created: int | None = 0,
    errors: Iterable[Any] = (),
    now: dt.datetime | None = None,
) -> AgentRunLog:
    """Record a run's outcome. Only a ``running`` run changes; a finished one is returned unchanged.
    ``items_created=None`` keeps the count the outbox keeps: an acknowledgement may land meanwhile."""
    if status not in FINISHED_STATUSES:
        raise ValueError(f"a run finishes as success, partial or error, not {status!r}")
    now = now or timezone.now()
    finished = AgentRunLog.objects.filter(id=run_id, status=RunStatus.RUNNING).update(
        status=status,
        items_processed=items_processed,
        items_created=F("items_created") if items_created is None else items_created,
        errors=_clean_errors(errors),
        completed_at=now,
        lease_expires_at=None,
    )
    run = AgentRunLog.objects.get(id=run_id)
    if not finished:
        logger.warning("run %s finished as %s but was already %s; kept", run_id, status, run.status)
    return run


def runs_sweep_stale(*, now: dt.datetime | None = None, limit: int = 1000) -> int:
    """Mark ``error`` every running run whose lease expired (its worker died); returns how many."""
    now = now or timezone.now()
    swept = 0
    with transaction.atomic():
        stale = list(
            AgentRunLog.objects.select_for_update(skip_locked=True)
            .filter(status=RunStatus.RUNNING, lease_expires_at__lt=now)
            .order_by("lease_expires_at")[:limit]
        )
        for run in stale:
            # The filter above only matches runs with a lease; `or now` is for the type checker.
            reason = f"worker lost: lease expired at {(run.lease_expires_at or now).isoformat()}"
            run.status = RunStatus.ERROR
            run.errors = [*run.errors, reason][-MAX_ERRORS_KEPT:]
            run.completed_at = now
            run.save(update_fields=["status", "errors", "completed_at"])
            logger.warning("run %s of agent %s: %s", run.id, run.agent_id, reason)
            swept += 1
    if stale:
        # Only a run's executor holds a running run's outbox items, and it is gone: the items wait for
        # their device's next hello, not for the dead delivery's hold to run out. After the commit, so
        # the runs' locks are never held while waiting for items an acknowledgement is writing.
        OutboxItem.objects.filter(run_id__in=[run.id for run in stale], status=OutboxStatus.PENDING).exclude(
            delivering_until=None
        ).update(delivering_until=None)
    return swept
