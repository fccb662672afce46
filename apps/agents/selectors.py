"""Reads of agents: a user's configs, their runs, what is due for a device that just connected."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection

from django.db.models import Exists, OuterRef, Q, QuerySet, Sum
from django.utils import timezone

from apps.core.errors import NotFoundError

from .models import AgentRunLog, AgentRunTally, AgentType, CloudAgentConfig, LocalAgentConfig, RunStatus

AgentConfigModel = LocalAgentConfig | CloudAgentConfig


def local_agent_list(*, user) -> QuerySet[LocalAgentConfig]:
    return LocalAgentConfig.objects.filter(user=user).order_by("-created_at")


def cloud_agent_list(*, user) -> QuerySet[CloudAgentConfig]:
    return CloudAgentConfig.objects.filter(user=user).order_by("-created_at")


def local_agent_get(*, user, agent_id: uuid.UUID) -> LocalAgentConfig:
    config = LocalAgentConfig.objects.filter(user=user, id=agent_id).first()
    if config is None:
        raise NotFoundError("Agent")
    return config


def cloud_agent_get(*, user, agent_id: uuid.UUID) -> CloudAgentConfig:
    config = CloudAgentConfig.objects.filter(user=user, id=agent_id).first()
    if config is None:
        raise NotFoundError("Agent")
    return config


def agent_get(*, user, agent_id: uuid.UUID) -> AgentConfigModel:
    """The user's local or cloud config with this id; 404 for a missing or someone else's."""
    config: AgentConfigModel | None = LocalAgentConfig.objects.filter(user=user, id=agent_id).first()
    config = config or CloudAgentConfig.objects.filter(user=user, id=agent_id).first()
    if config is None:
        raise NotFoundError("Agent")
    return config


def agent_counts(*, user) -> tuple[int, int]:
    """(all configs, enabled configs) of the user, local and cloud together."""
    local = LocalAgentConfig.objects.filter(user=user)
    cloud = CloudAgentConfig.objects.filter(user=user)
    total = local.count() + cloud.count()
    enabled = local.filter(enabled=True).count() + cloud.filter(enabled=True).count()
    return total, enabled


def run_list(*, user, agent_id: uuid.UUID | None = None) -> QuerySet[AgentRunLog]:
    """The user's runs, newest first; with ``agent_id`` that agent's (404 if it is not the user's)."""
    runs = AgentRunLog.objects.filter(user=user)
    if agent_id is not None:
        agent_get(user=user, agent_id=agent_id)
        runs = runs.filter(agent_id=agent_id)
    return runs.order_by("-started_at", "-id")


def run_count(*, user, agent_id: uuid.UUID | None = None) -> int:
    """How many runs ``run_list`` lists: the user's run tallies (``AgentRunTally``), not a count of
    the runs, which only grow."""
    tallies = AgentRunTally.objects.filter(user=user)
    if agent_id is not None:
        tallies = tallies.filter(agent_id=agent_id)
    return tallies.aggregate(n=Sum("runs"))["n"] or 0


def agents_due_for_device(
    *, user_id: uuid.UUID, device_id: str, now: dt.datetime | None = None
) -> list[LocalAgentConfig]:
    """The enabled local agents of this device that owe a run and are not running now.

    Owed: a scheduled run came due while the device was offline (``waiting_for_device_since``),
    or the schedule is due and the dispatcher has not reached it yet. The device-hello hook starts
    each with ``run_start(config=…, trigger=RunTrigger.DEVICE_CONNECT)``; a race with the
    dispatcher ends in one run (the other side gets ``agent_already_running``).
    """
    return agents_due_for_devices(devices=[(user_id, device_id)], now=now)


def local_runs_running_on(*, devices: Collection[tuple[uuid.UUID | str, str]]) -> dict[tuple[str, str], list[str]]:
    """The local runs still running on each of these (user_id, device_id) pairs, by pair, in one query
    (a reconnect storm's hellos are checked together)."""
    pairs = {(str(user_id), device_id) for user_id, device_id in devices}
    if not pairs:
        return {}
    owners = Q()
    for user_id, device_id in pairs:
        owners |= Q(user_id=user_id, device_id=device_id)
    running: dict[tuple[str, str], list[str]] = {}
    rows = AgentRunLog.objects.filter(owners, agent_type=AgentType.LOCAL, status=RunStatus.RUNNING).values_list(
        "user_id", "device_id", "id"
    )
    for owner, device, run_id in rows:
        running.setdefault((str(owner), device), []).append(str(run_id))
    return running


def agents_due_for_devices(
    *, devices: Collection[tuple[uuid.UUID | str, str]], now: dt.datetime | None = None
) -> list[LocalAgentConfig]:
    """``agents_due_for_device`` for many (user_id, device_id) pairs in one query (a reconnect
    storm's hellos are checked together); each agent is matched on its own user and device."""
    if not devices:
        return []
    now = now or timezone.now()
    running = AgentRunLog.objects.filter(agent_id=OuterRef("id"), status=RunStatus.RUNNING)
    owners = Q()
    for user_id, device_id in set(devices):
        owners |= Q(user_id=user_id, device_id=device_id)
    return list(
        LocalAgentConfig.objects.filter(owners, enabled=True)
        .filter(Q(waiting_for_device_since__isnull=False) | Q(next_run_at__lte=now))
        .exclude(Exists(running))
        .order_by("created_at")
    )
