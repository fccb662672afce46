"""Agents fixtures: users on each tier with their API clients, online devices, config factories;
for runs, the devices app's real ASGI server and reference clients, the assistant's scripted
OpenAI-compatible model, and Celery in eager mode."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.core.cache import caches
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.testing import client_for
from apps.agents.execution import run_execute
from apps.agents.models import AgentRunLog, CloudAgentConfig, LocalAgentConfig, OutboxItem, RunTrigger
from apps.agents.runs import run_start
from apps.assistant.testing.scripted_openai import RecordedRequest, Reply, tool_call
from apps.assistant.tests.conftest import _scripted_server, llm  # noqa: F401
from apps.devices import presence_index
from apps.devices.models import Device
from apps.devices.node import ALIVE_KEY
from apps.devices.tests.conftest import device_server, devices, fast_device_settings, wait_until  # noqa: F401

UTC = dt.UTC


def local_body(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "Inbox folder",
        "device_id": "laptop-1",
        "directory_paths": ["/home/alice/mail"],
        "data_types": ["tasks", "notes"],
        "prompt_template": "Extract tasks from emails.",
        "file_extensions": [".eml", ".txt"],
        "schedule_cron": "0 */6 * * *",
        **overrides,
    }


def cloud_body(**overrides: Any) -> dict[str, Any]:
    return {
        "provider": "gmail",
        "name": "Gmail clients",
        "data_types": ["tasks"],
        "prompt_template": "Extract invoices.",
        "schedule_cron": "0 9 * * *",
        "filter_config": {"labels": ["clients"], "senders": [], "date_range": {"from": "2026-01-01"}},
        **overrides,
    }


def device_row_online(user, device_id: str = "laptop-1") -> Device:
    """A row that says the device is online, and no socket anywhere (history, not liveness)."""
    return Device.objects.create(
        user=user,
        device_id=device_id,
        is_online=True,
        channel_name=f"specific.test!{device_id}",
        lease_expires_at=timezone.now() + dt.timedelta(hours=1),
    )


def device_online(user, device_id: str = "laptop-1") -> Device:
    """A device held by a live socket as the presence index sees it: its holder's entry and a live
    node (the socket itself is not needed to decide who is online)."""
    device = device_row_online(user, device_id)
    client = caches["default"]._cache.get_client(write=True)  # type: ignore[attr-defined]  # django-redis backend internals
    client.hset(presence_index.KEY.format(user_id=user.id), device_id, f"{device.channel_name} test-node 0")
    client.set(ALIVE_KEY.format(node="test-node"), "1", ex=3600)
    return device


def make_local(
    user, *, cron: str = "0 9 * * *", next_run_at: dt.datetime | None = None, **extra: Any
) -> LocalAgentConfig:
    fields = {"name": "folder", "device_id": "laptop-1", "data_types": ["tasks"], "schedule_cron": cron, **extra}
    return LocalAgentConfig.objects.create(user=user, next_run_at=next_run_at, **fields)


def make_cloud(
    user, *, cron: str = "0 9 * * *", next_run_at: dt.datetime | None = None, **extra: Any
) -> CloudAgentConfig:
    fields = {"name": "mail", "provider": "gmail", "data_types": ["tasks"], "schedule_cron": cron, **extra}
    return CloudAgentConfig.objects.create(user=user, next_run_at=next_run_at, **fields)


@pytest.fixture
def free_user(make_user):
    return make_user("free@example.com")


@pytest.fixture
def free_client(free_user) -> APIClient:
    return client_for(free_user)


@pytest.fixture
def pro_user(make_user):
    return make_user("pro@example.com", tier="pro")


@pytest.fixture
def pro_client(pro_user) -> APIClient:
    return client_for(pro_user)


@pytest.fixture
def other_user(make_user):
    return make_user("mallory@example.com", tier="pro")


@pytest.fixture
def other_client(other_user) -> APIClient:
    return client_for(other_user)


# --- runs over the real socket ------------------------------------------------------------

DATA_BLOCK = re.compile(r"<<<(DATA-[0-9a-f]+)>>>\n(.*)\n<<<END-\1>>>", re.DOTALL)
FILE_BLOCK = re.compile(r"<<<(DATA-[0-9a-f]+) FILE (\d+)>>>\n(.*?)\n<<<END-\1 FILE \2>>>", re.DOTALL)


@pytest.fixture(autouse=True)
def agent_settings(settings):
    """Quick drop detection and a short idle timeout, so failure paths finish fast."""
    settings.AGENTS_DEVICE_CHECK_INTERVAL = 0.2
    settings.AGENTS_DATA_IDLE_TIMEOUT = 10.0
    settings.AGENTS_RUN_LEASE_RENEW_INTERVAL = 5.0
    # A request per file, which these tests' scripted answers and request counts assume; the tests
    # of several files per request set their own.
    settings.AGENTS_EXTRACTION_FILES_PER_REQUEST = 1
    return settings


def document_of(body: dict[str, Any]) -> str:
    """The fenced data block the extraction model was given."""
    match = DATA_BLOCK.search(RecordedRequest("", body).last_user_text)
    assert match, "the source was not fenced as data"
    return match.group(2)


def propose(**tables: list[dict[str, Any]]) -> Reply:
    return tool_call("propose_new_items", tables)


def one_task_per_file(body: dict[str, Any]) -> Reply:
    """The scripted extraction model: one task per file, titled after the file's first content line."""
    lines = [line for line in document_of(body).splitlines() if line.strip()]
    title = lines[1] if len(lines) > 1 else lines[0]
    return propose(tasks=[{"title": title[:80], "priority": "high", "dueDate": "2026-12-01"}])


def documents_of(body: dict[str, Any]) -> dict[int, str]:
    """The files of a request of several, by number, each as fenced (a one-file request: {0: it})."""
    text = RecordedRequest("", body).last_user_text
    blocks = {int(number): block for _, number, block in FILE_BLOCK.findall(text)}
    return blocks or {0: document_of(body)}


def one_task_per_fenced_file(body: dict[str, Any]) -> Reply:
    """``one_task_per_file`` for requests of one file or several (then the tasks grouped by file number,
    listed last file first, so an answer read in order would file them under the wrong file)."""
    documents = documents_of(body)
    if "files" not in body["tools"][0]["function"]["parameters"]["properties"]:
        return one_task_per_file(body)
    groups = []
    for number, document in sorted(documents.items(), reverse=True):
        lines = [line for line in document.splitlines() if line.strip()]
        groups.append({"file": number, "tasks": [{"title": lines[1][:80], "priority": "high"}]})
    return propose(files=groups)


def write_files(folder, count: int, *, suffix: str = ".md", size: int = 0, prefix: str = "note") -> list:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"{prefix}{i:04d}{suffix}"
        body = f"Follow up {prefix} {i}\n"
        path.write_text(body + "x" * max(0, size - len(body)))
        paths.append(path)
    return paths


@pytest.fixture
def make_local_config(user):
    async def make(device_id: str, paths: list[str], *, owner=None, **extra: Any) -> LocalAgentConfig:
        fields = {
            "name": "Inbox folder",
            "data_types": ["tasks"],
            "prompt_template": "Every file is a follow-up: make it a task.",
            "file_extensions": [".md", ".txt"],
            **extra,
        }
        return await sync_to_async(LocalAgentConfig.objects.create)(
            user=owner or user, device_id=device_id, directory_paths=paths, **fields
        )

    return make


async def start_run(config, trigger: RunTrigger = RunTrigger.MANUAL) -> AgentRunLog:
    """A running run, its executor not queued (tests execute it themselves)."""
    return await sync_to_async(run_start)(config=config, trigger=trigger, enqueue=False)


def in_worker_thread(function, /, **kwargs: Any) -> None:
    """Run ``function`` as a Celery worker would: its own thread, its connection closed at the end."""
    from django.db import connection

    try:
        function(**kwargs)
    finally:
        connection.close()


async def execute(run: AgentRunLog) -> AgentRunLog:
    """The executor's entry point (the Celery task's body), in a worker-like thread of its own."""
    await sync_to_async(in_worker_thread, thread_sensitive=False)(run_execute, run_id=run.id)
    return await sync_to_async(AgentRunLog.objects.get)(id=run.id)


def rows(client, table: str = "tasks") -> list[dict[str, Any]]:
    return client.store.execute({"action": "select", "table": table})["rows"]


async def outbox(**filters: Any) -> list[OutboxItem]:
    return await sync_to_async(lambda: list(OutboxItem.objects.filter(**filters).order_by("created_at")))()


def tool_actions(client) -> set[tuple[str, str]]:
    return {(c["action"], c.get("table")) for c in client.tool_calls}
