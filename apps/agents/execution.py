"""Executing one agent run end to end (called by the ``agent_run_execute`` Celery task).

Runs execute in the Celery worker, never in the web process holding the device's socket: a run
lasts minutes and calls the LLM many times, and the worker is where that work is accounted for
(acks_late, a lease the sweeper watches). The socket process only checks and forwards the
device's frames to the run (see ``socket_handlers``).
"""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async

from apps.billing.budgets import llm_budgeted_async
from apps.billing.error_codes import BillingErrorCode
from apps.billing.metering import LlmPurpose
from apps.core.errors import ApplicationError

from .cloud_runs import cloud_run_execute
from .error_codes import AgentsErrorCode
from .local_runs import local_run_execute
from .models import AgentRunLog, AgentType, CloudAgentConfig, LocalAgentConfig, RunStatus
from .run_pipeline import RunErrors, finish
from .runs import run_finish

logger = logging.getLogger(__name__)


def run_execute(*, run_id) -> AgentRunLog | None:
    """Execute a running run to its end; a run that is not running (done, swept) is left alone."""
    run = AgentRunLog.objects.filter(id=run_id).first()
    if run is None or run.status != RunStatus.RUNNING:
        return run
    return async_to_sync(_run_execute_async)(run=run)


async def _run_execute_async(*, run: AgentRunLog) -> AgentRunLog:
    config = await database_sync_to_async(_config_of)(run=run)
    errors = RunErrors()
    try:
        if config is None:
            errors.add(AgentsErrorCode.AGENT_CONFIG_MISSING, "the agent was deleted before it ran")
            return await finish(run, processed=0, errors=errors, aborted=True)
        async with llm_budgeted_async(user_id=run.user_id, purpose=LlmPurpose.AGENT_EXTRACTION, run_id=str(run.id)):
            if isinstance(config, LocalAgentConfig):
                return await local_run_execute(run, config)
            return await cloud_run_execute(run, config)
    except ApplicationError as exc:  # e.g. llm_not_configured
        if exc.code == BillingErrorCode.LLM_BUDGET_EXHAUSTED:
            errors.add(AgentsErrorCode.BUDGET_EXHAUSTED, exc.message)
            return await finish(run, processed=0, errors=errors, aborted=True)
        errors.add(exc.code, exc.message)
        return await finish(run, processed=0, errors=errors, aborted=True)
    except BaseException:
        # Never leave a run "running" behind: record the failure, then let it propagate.
        logger.exception("agents: run %s failed", run.id)
        errors.add("internal_error", "the run failed on the server")
        await database_sync_to_async(_finish_if_running)(run_id=run.id, errors=errors.as_list())
        raise


def _config_of(*, run: AgentRunLog) -> LocalAgentConfig | CloudAgentConfig | None:
    model = LocalAgentConfig if run.agent_type == AgentType.LOCAL else CloudAgentConfig
    return model.objects.filter(id=run.agent_id, user_id=run.user_id).first()


def _finish_if_running(*, run_id, errors: list[str]) -> None:
    run = AgentRunLog.objects.filter(id=run_id, status=RunStatus.RUNNING).first()
    if run is not None:
        run_finish(
            run_id=run_id,
            status=RunStatus.PARTIAL if run.items_created else RunStatus.ERROR,
            items_processed=run.items_processed,
            items_created=None,
            errors=[*run.errors, *errors],
        )
