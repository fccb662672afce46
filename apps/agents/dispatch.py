"""The scheduler's tick: claim due agent configs, advance their schedule, create their runs.

One Celery beat task calls :func:`agents_dispatch_due` every few seconds (whatever the number
of configs; there is no periodic task per config). Each batch is one short transaction:

1. claim up to ``batch_size`` enabled configs with ``next_run_at <= now`` through the partial
   index, ``FOR UPDATE SKIP LOCKED`` (two ticks or two beats share the work, never the rows);
2. one read of the devices' presence index (Redis) learns which of the owners' devices are online;
3. insert the runs with ``ON CONFLICT DO NOTHING``: the partial unique indexes (one running
   run per agent; one run per agent and due time) make a duplicated tick a no-op, and an
   agent still running its previous run skips this occurrence;
4. move ``next_run_at`` to the next occurrence after now (missed occurrences coalesce);
5. after commit, queue ``agent_run_execute`` for each new run.

A local agent whose device is offline is not failed: it is marked
``waiting_for_device_since`` and starts when the device says hello
(:func:`apps.agents.selectors.agents_due_for_device`).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from apps.devices.selectors import devices_online

from .models import AgentType, CloudAgentConfig, LocalAgentConfig, RunStatus, RunTrigger
from .runs import lease_until, run_execute_enqueue
from .schedules import ScheduleError, next_run_after
from .selectors import AgentConfigModel

logger = logging.getLogger(__name__)


@dataclass
class DispatchResult:
    """What one tick did; ``run_ids`` are the runs created (queued after commit)."""

    claimed: int = 0
    runs_created: int = 0
    waiting_for_device: int = 0
    skipped_running: int = 0
    batches: int = 0
    run_ids: list[uuid.UUID] = field(default_factory=list)

    def add(self, other: DispatchResult) -> None:
        self.claimed += other.claimed
        self.runs_created += other.runs_created
        self.waiting_for_device += other.waiting_for_device
        self.skipped_running += other.skipped_running
        self.batches += other.batches
        self.run_ids.extend(other.run_ids)


@dataclass(frozen=True)
class _Due:
    config_id: uuid.UUID
    user_id: uuid.UUID
    schedule_cron: str
    due_at: dt.datetime
    time_zone: str
    device_id: str  # local agents only


_CLAIM_SQL = """
SELECT c.id, c.user_id, c.schedule_cron, c.next_run_at, u.time_zone{device_column}
FROM {table} AS c JOIN accounts_user AS u ON u.id = c.user_id
WHERE c.enabled AND c.next_run_at <= %s
ORDER BY c.next_run_at
LIMIT %s
FOR UPDATE OF c SKIP LOCKED
"""


def _claim(*, model: type[AgentConfigModel], now: dt.datetime, limit: int) -> list[_Due]:
    local = model is LocalAgentConfig
    sql = _CLAIM_SQL.format(table=model._meta.db_table, device_column=", c.device_id" if local else "")
    with connection.cursor() as cursor:
        cursor.execute(sql, [now, limit])
        rows = cursor.fetchall()
    return [_Due(row[0], row[1], row[2], row[3], row[4], row[5] if local else "") for row in rows]


def _next_due(*, due: _Due, now: dt.datetime, memo: dict) -> dt.datetime | None:
    """The next occurrence after now; memoised per (cron, zone, minute): many configs share a schedule."""
    after = max(now, due.due_at).replace(second=0, microsecond=0)
    key = (due.schedule_cron, due.time_zone, after)
    if key not in memo:
        try:
            memo[key] = next_run_after(expression=due.schedule_cron, time_zone=due.time_zone, after=after)
        except (ScheduleError, ValueError, KeyError):
            # Saved schedules are validated; a zone removed from tzdata falls back to UTC, a
            # schedule that can no longer fire stops (next_run_at NULL) rather than fail the tick.
            try:
                memo[key] = next_run_after(expression=due.schedule_cron, time_zone="UTC", after=after)
            except (ScheduleError, ValueError):
                logger.error(
                    "schedule %r of agent %s can no longer fire; unscheduled", due.schedule_cron, due.config_id
                )
                memo[key] = None
    return memo[key]


# Column arrays through unnest(): one short statement whatever the batch size (a VALUES list of
# thousands of placeholders costs more to build and parse than to run).
_INSERT_RUNS_SQL = """
INSERT INTO agents_agentrunlog
    (id, user_id, agent_id, agent_type, status, trigger, scheduled_for, device_id,
     items_processed, items_created, errors, started_at, lease_expires_at)
SELECT v.id, v.user_id, v.agent_id, %s, %s, %s, v.scheduled_for, v.device_id, 0, 0, '[]'::jsonb, %s, %s
FROM unnest(%s::uuid[], %s::uuid[], %s::uuid[], %s::timestamptz[], %s::text[])
    AS v(id, user_id, agent_id, scheduled_for, device_id)
ON CONFLICT DO NOTHING
RETURNING id, agent_id
"""


def _insert_runs(*, dues: list[_Due], agent_type: AgentType, now: dt.datetime) -> dict[uuid.UUID, uuid.UUID]:
    """Insert one running run per due config; returns {agent_id: run_id} of the rows that went in."""
    if not dues:
        return {}
    params: list[Any] = [
        agent_type.value,
        RunStatus.RUNNING.value,
        RunTrigger.SCHEDULE.value,
        now,
        lease_until(now),
        [uuid.uuid4() for _ in dues],
        [due.user_id for due in dues],
        [due.config_id for due in dues],
        [due.due_at for due in dues],
        [due.device_id for due in dues],
    ]
    with connection.cursor() as cursor:
        cursor.execute(_INSERT_RUNS_SQL, params)
        return {agent_id: run_id for run_id, agent_id in cursor.fetchall()}


_ADVANCE_SQL = """
UPDATE {table} AS c
SET next_run_at = v.next_run_at,
    last_run_at = CASE WHEN v.started THEN %s ELSE c.last_run_at END{waiting_set}
FROM unnest(%s::uuid[], %s::timestamptz[], %s::boolean[], %s::boolean[], %s::timestamptz[])
    AS v(id, next_run_at, started, waiting, due_at)
WHERE c.id = v.id
"""
_WAITING_SET = """,
    waiting_for_device_since = CASE WHEN v.waiting THEN COALESCE(c.waiting_for_device_since, v.due_at)
                                    ELSE c.waiting_for_device_since END"""


def _advance(
    *,
    model: type[AgentConfigModel],
    dues: list[_Due],
    next_due: dict[uuid.UUID, dt.datetime | None],
    started: set[uuid.UUID],
    waiting: set[uuid.UUID],
    now: dt.datetime,
) -> None:
    """One UPDATE: next_run_at, last_run_at of started runs, owed runs of offline devices."""
    local = model is LocalAgentConfig
    sql = _ADVANCE_SQL.format(table=model._meta.db_table, waiting_set=_WAITING_SET if local else "")
    params: list[Any] = [
        now,
        [due.config_id for due in dues],
        [next_due[due.config_id] for due in dues],
        [due.config_id in started for due in dues],
        [due.config_id in waiting for due in dues],
        [due.due_at for due in dues],
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _dispatch_batch(*, model: type[AgentConfigModel], now: dt.datetime, batch_size: int, memo: dict) -> DispatchResult:
    result = DispatchResult(batches=1)
    local = model is LocalAgentConfig
    agent_type = AgentType.LOCAL if local else AgentType.CLOUD
    with transaction.atomic():
        dues = _claim(model=model, now=now, limit=batch_size)
        if not dues:
            return DispatchResult()
        result.claimed = len(dues)
        if local:
            online = devices_online(user_ids={due.user_id for due in dues})
            runnable = [due for due in dues if (due.user_id, due.device_id) in online]
            waiting = {due.config_id for due in dues if (due.user_id, due.device_id) not in online}
        else:
            runnable, waiting = dues, set()
        created = _insert_runs(dues=runnable, agent_type=agent_type, now=now)
        next_due = {due.config_id: _next_due(due=due, now=now, memo=memo) for due in dues}
        _advance(model=model, dues=dues, next_due=next_due, started=set(created), waiting=waiting, now=now)
        result.runs_created = len(created)
        result.waiting_for_device = len(waiting)
        result.skipped_running = len(runnable) - len(created)
        result.run_ids = list(created.values())
        run_ids = result.run_ids
        transaction.on_commit(lambda: run_execute_enqueue(run_ids=run_ids))
    return result


def agents_dispatch_due(
    *,
    now: dt.datetime | None = None,
    batch_size: int | None = None,
    time_budget: float | None = None,
) -> DispatchResult:
    """Dispatch every due agent (local, then cloud) in batches, until none is due or the budget is spent.

    ``now`` is the scheduler's clock (tests and the benchmark pass a fixed one).
    """
    now = now or timezone.now()
    batch_size = batch_size or settings.AGENTS_DISPATCH_BATCH_SIZE
    budget = settings.AGENTS_DISPATCH_TIME_BUDGET if time_budget is None else time_budget
    deadline = time.monotonic() + budget
    total = DispatchResult()
    memo: dict = {}
    # Alternate local and cloud batches so a backlog of one kind never starves the other.
    pending: list[type] = [LocalAgentConfig, CloudAgentConfig]
    while pending and time.monotonic() < deadline:
        for model in list(pending):
            batch = _dispatch_batch(model=model, now=now, batch_size=batch_size, memo=memo)
            total.add(batch)
            if batch.claimed < batch_size:
                pending.remove(model)
    if total.claimed:
        logger.info(
            "agents dispatch: %d due, %d runs started, %d waiting for their device, %d skipped (still running)",
            total.claimed,
            total.runs_created,
            total.waiting_for_device,
            total.skipped_running,
        )
    return total
