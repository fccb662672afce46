"""Rolling deploys against real Celery worker processes (prefork, one child), on the test database and
the test run's Redis broker.

SIGTERM mid cloud run: the worker's warm shutdown lets the run finish and the worker exits 0; the task
redelivered to a second worker process leaves the finished run and its outbox items alone. A pool
child killed mid-run (SIGKILL): the late-acknowledged task is rejected back to the queue, picked up
again, and the run ends once, each mail's item stored once (the outbox ids are deterministic).

The scripted model and the Gmail fake are loopback servers of the test process, reached by the
workers over HTTP; the model blocks its reply until the test releases it, so the run is mid-way
when the signal arrives (no timing).
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

import psutil
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings as django_settings

from adiuva.celery import app
from apps.agents.models import AgentRunLog, OutboxItem, OutboxStatus, RunStatus, RunTrigger
from apps.agents.runs import run_start
from apps.agents.tasks import agent_run_execute
from apps.assistant.testing.scripted_openai import Reply
from apps.connectors.tests.conftest import connect, fake, provider_settings  # noqa: F401

from .conftest import document_of, wait_until
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


class HeldModel:
    """The scripted extraction model, whose replies (for mails matching ``only``) wait for ``gate``:
    the model server's request thread blocks, so the worker is mid-run until the test releases it."""

    def __init__(self, only: str = "") -> None:
        self.only = only
        self.asked = threading.Event()
        self.gate = threading.Event()

    def __call__(self, body: dict) -> Reply:
        if self.only in document_of(body):
            self.asked.set()
            self.gate.wait(WORKER_TIMEOUT_SECONDS)
        return task_per_subject(body)


def stored(run_id) -> list[tuple[str, str]]:
    return sorted((str(i.id), i.status) for i in OutboxItem.objects.filter(run_id=run_id))


async def test_a_worker_stopped_mid_run_finishes_it_and_a_redelivery_duplicates_nothing(
    llm,
    gmail_config,  # noqa: F811
    tmp_path,
):
    # given a cloud run queued on the broker, whose model replies wait for the test to release them
    await sync_to_async(app.control.purge)()  # tasks earlier tests queued for no worker
    model = HeldModel()
    llm.fallback = model
    run = await sync_to_async(run_start)(config=gmail_config, trigger=RunTrigger.MANUAL)
    first = WorkerProcess(tmp_path / "first.log")
    try:
        # and a worker process that took the run and is waiting for the model
        await wait_until(model.asked.is_set, timeout=WORKER_TIMEOUT_SECONDS)

        # when a deploy sends it SIGTERM mid-run, and the model answers once the shutdown began
        first.process.send_signal(signal.SIGTERM)
        await wait_until(lambda: first.logged("Warm shutdown"), timeout=WORKER_TIMEOUT_SECONDS)
        assert not first.logged("succeeded")  # the run is still waiting for the model
        model.gate.set()

        # then the worker finishes the run and exits cleanly (a warm shutdown, not a lost child)
        await wait_until(lambda: first.process.poll() is not None, timeout=WORKER_TIMEOUT_SECONDS)
        assert first.process.returncode == 0, first.log.read_text()
    finally:
        model.gate.set()
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


async def test_a_run_whose_worker_child_died_is_picked_up_again_and_stores_each_item_once(
    llm,
    gmail_config,  # noqa: F811
    tmp_path,
):
    # given a cloud run on a worker process that stored the first mail's item and waits for the second
    await sync_to_async(app.control.purge)()
    model = HeldModel(only="Book the kickoff")
    llm.fallback = model
    run = await sync_to_async(run_start)(config=gmail_config, trigger=RunTrigger.MANUAL)
    worker = WorkerProcess(tmp_path / "worker.log")
    try:

        async def first_stored() -> bool:
            return len(await sync_to_async(stored)(run.id)) == 1

        await wait_until(model.asked.is_set, timeout=WORKER_TIMEOUT_SECONDS)
        await wait_until(first_stored, timeout=WORKER_TIMEOUT_SECONDS)
        first_item = await sync_to_async(stored)(run.id)

        # when its pool child dies (SIGKILL) mid-run, and the model answers again
        (child,) = psutil.Process(worker.process.pid).children()
        assert not worker.logged("succeeded")  # the run is still waiting for the model
        child.kill()
        model.gate.set()

        # then the task comes back (acknowledged late, rejected on the lost child) and the run ends once
        await wait_until(lambda: worker.logged("succeeded"), timeout=WORKER_TIMEOUT_SECONDS)
    finally:
        model.gate.set()
        worker.stop()
    run = await sync_to_async(AgentRunLog.objects.get)(id=run.id)
    assert (run.status, run.items_processed, run.errors) == (RunStatus.SUCCESS, 2, [])
    assert await sync_to_async(AgentRunLog.objects.filter(agent_id=gmail_config.id).count)() == 1
    # and each mail's item is stored once, the first under the id it had before the child died
    items = await sync_to_async(stored)(run.id)
    assert len(items) == 2
    assert set(first_item) <= set(items)
