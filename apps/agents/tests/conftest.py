"""Agents fixtures: users on each tier with their API clients, online devices, config factories."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.tokens import tokens_issue
from apps.agents.models import CloudAgentConfig, LocalAgentConfig
from apps.assistant.tests.conftest import _scripted_server, llm  # noqa: F401 - the scripted model
from apps.devices.models import Device

UTC = dt.UTC


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens_issue(user=user).access_token}")
    return client


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


def device_online(user, device_id: str = "laptop-1") -> Device:
    return Device.objects.create(
        user=user,
        device_id=device_id,
        is_online=True,
        channel_name=f"specific.test!{device_id}",
        lease_expires_at=timezone.now() + dt.timedelta(hours=1),
    )


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
