"""A rolling deploy stops a real Celery worker process (SIGTERM) in the middle of a cloud run: the
worker's warm shutdown lets the run finish, the worker exits cleanly, and the run ends once with its
true status. The task comes back to a second worker process (as a late-acknowledged task does when
its worker died), which leaves the finished run alone: no outbox item is stored twice.

The workers run the test settings against the test database and the test run's Redis broker; the
scripted model and the Gmail fake are loopback servers of the test process, which the workers reach
over HTTP like any other endpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings as django_settings

from adiuva.celery import app
from apps.agents.models import AgentRunLog, OutboxItem, OutboxStatus, RunStatus, RunTrigger
from apps.agents.runs import run_start
from apps.agents.tasks import agent_run_execute
from apps.assistant.testing.scripted_openai import Reply
from apps.connectors.tests.conftest import connect, fake, provider_settings  # noqa: F401

from .conftest import wait_until
from .test_cloud_run import gmail_config, mailbox, task_per_subject  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)

PROJECT_ROOT = Path(__file__).resolve().parents[3]
WORKER_TIMEOUT_SECONDS = 60

# The worker's settings the test process changed (pytest-django's ``settings`` fixture), copied into
# the worker before Django is set up: the test database and the loopback model and mail servers.
COPIED_SETTINGS = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "GOOGLE_OAUTH_CLIENT_ID",
    "GOOGLE_OAUTH_CLIENT_SECRET",
    "GOOGLE_OAUTH_TOKEN_URL",
    "GOOGLE_OAUTH_REVOKE_URL",
    "GMAIL_API_BASE_URL",
    "CONNECTORS_HTTP_BACKOFF_SECONDS",
    "CONNECTORS_RETRY_AFTER_MAX_SECONDS",
    "CONNECTORS_HTTP_TIMEOUT",
    "AGENTS_RUN_LEASE_RENEW_INTERVAL",
)

WORKER = textwrap.dedent(
    """
    import json, sys

    import django
    from django.conf import settings

    database, overrides = sys.argv[1], json.loads(sys.argv[2])
    # Before setup, so no connection is ever made to the database the settings name.
    settings.DATABASES["default"]["NAME"] = database
    for name, value in overrides.items():
        setattr(settings, name, value)
    django.setup()

    from adiuva.celery import app

    app.worker_main(
        ["worker", "--pool", "prefork", "--concurrency", "1", "--without-gossip", "--without-mingle",
         "--without-heartbeat", "-Q", "celery", "--loglevel", "INFO"]
    )
    """
)


class WorkerProcess:
    """``celery worker`` (prefork, one child) in its own process; its log in a file the test reads."""

    def __init__(self, log: Path) -> None:
        overrides = {name: getattr(django_settings, name) for name in COPIED_SETTINGS}
        # The held model reply must not time out the worker's model client.
        overrides["ASSISTANT_LLM_TIMEOUT"] = 30.0
        self.log = log
        with log.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-c", WORKER, django_settings.DATABASES["default"]["NAME"], json.dumps(overrides)],
                cwd=str(PROJECT_ROOT),
                env={**os.environ, "DJANGO_SETTINGS_MODULE": "adiuva.settings.test", "PYTHONUNBUFFERED": "1"},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so stop() reaches the pool child too
            )

    def logged(self, text: str) -> bool:
        return text in self.log.read_text()

    def stop(self) -> None:
        """A warm shutdown (its pool child closes its database connection); SIGKILL to the group if stuck."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(WORKER_TIMEOUT_SECONDS)
                return
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


def held(gate: threading.Event):
    """The scripted extraction model, whose replies wait for ``gate`` once their tool call is out."""

    def reply(body: dict) -> Reply:
        answer = task_per_subject(body)
        answer.hold_before_finish = gate
        return answer

    return reply


def stored(run_id) -> list[tuple[str, str]]:
    return sorted((str(i.id), i.status) for i in OutboxItem.objects.filter(run_id=run_id))


async def test_a_worker_stopped_mid_run_finishes_it_and_a_redelivery_duplicates_nothing(
    llm,
    gmail_config,  # noqa: F811
    tmp_path,
):
    # given a cloud run queued on the broker, whose model replies wait for the test to release them
    await sync_to_async(app.control.purge)()  # tasks earlier tests queued for no worker
    gate = threading.Event()
    llm.fallback = held(gate)
    run = await sync_to_async(run_start)(config=gmail_config, trigger=RunTrigger.MANUAL)
    first = WorkerProcess(tmp_path / "first.log")
    try:
        # and a worker process that took the run and is waiting for the model
        await wait_until(lambda: len(llm.chat_requests()) >= 1, timeout=WORKER_TIMEOUT_SECONDS)

        # when a deploy sends it SIGTERM mid-run, and the model answers once the shutdown began
        first.process.send_signal(signal.SIGTERM)
        await wait_until(lambda: first.logged("Warm shutdown"), timeout=WORKER_TIMEOUT_SECONDS)
        gate.set()

        # then the worker finishes the run and exits cleanly (a warm shutdown, not a lost child)
        await wait_until(lambda: first.process.poll() is not None, timeout=WORKER_TIMEOUT_SECONDS)
        assert first.process.returncode == 0, first.log.read_text()
    finally:
        gate.set()
        first.stop()
    run = await sync_to_async(AgentRunLog.objects.get)(id=run.id)
    assert (run.status, run.items_processed, run.items_created, run.errors) == (RunStatus.SUCCESS, 2, 0, [])
    items = await sync_to_async(stored)(run.id)
    assert len(items) == 2
    assert {status for _, status in items} == {OutboxStatus.PENDING}

    # when the task comes back to a second worker process (a redelivery of the late-acknowledged task)
    task = await sync_to_async(agent_run_execute.delay)(str(run.id))
    second = WorkerProcess(tmp_path / "second.log")
    try:
        await wait_until(lambda: second.logged(f"[{task.id}] succeeded"), timeout=WORKER_TIMEOUT_SECONDS)
    finally:
        second.stop()

    # then the finished run was left alone: the same run, the same outbox items, nothing stored twice
    again = await sync_to_async(AgentRunLog.objects.get)(id=run.id)
    assert (again.status, again.items_created, again.completed_at) == (RunStatus.SUCCESS, 0, run.completed_at)
    assert await sync_to_async(stored)(run.id) == items
    assert len(llm.chat_requests()) == 2
