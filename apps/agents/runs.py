"""Run lifecycle: start (one running run per agent), lease renewal, finish.

STAND-IN with the agreed names and signatures, so the execution side can be built and tested
before the branch that owns this module lands; the owner's version replaces it on merge.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.core.errors import ApplicationError

from .error_codes import AgentsErrorCode
from .models import AgentRunLog, AgentType, CloudAgentConfig, LocalAgentConfig, RunStatus

RUN_LEASE = timedelta(minutes=5)


def run_start(*, config: LocalAgentConfig | CloudAgentConfig, trigger: str, scheduled_for=None) -> AgentRunLog:
    local = isinstance(config, LocalAgentConfig)
    try:
        with transaction.atomic():
            return AgentRunLog.objects.create(
                user_id=config.user_id,
                agent_id=config.id,
                agent_type=AgentType.LOCAL if local else AgentType.CLOUD,
                trigger=trigger,
                scheduled_for=scheduled_for,
                device_id=config.device_id if local else "",
                lease_expires_at=timezone.now() + RUN_LEASE,
            )
    except IntegrityError as exc:
        raise ApplicationError(
            AgentsErrorCode.AGENT_ALREADY_RUNNING, "This agent is already running.", status=409
        ) from exc


def run_lease_renew(*, run_id) -> bool:
    return bool(
        AgentRunLog.objects.filter(id=run_id, status=RunStatus.RUNNING).update(
            lease_expires_at=timezone.now() + RUN_LEASE
        )
    )


def run_finish(*, run_id, status: str, items_processed: int, items_created: int, errors: list[str]) -> AgentRunLog:
    now = timezone.now()
    AgentRunLog.objects.filter(id=run_id, status=RunStatus.RUNNING).update(
        status=status,
        items_processed=items_processed,
        items_created=items_created,
        errors=errors,
        completed_at=now,
        lease_expires_at=None,
    )
    run = AgentRunLog.objects.get(id=run_id)
    model = LocalAgentConfig if run.agent_type == AgentType.LOCAL else CloudAgentConfig
    model.objects.filter(id=run.agent_id).update(last_run_at=now)
    return run
