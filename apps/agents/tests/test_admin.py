"""Staff admin pages of agents render, filter runs with errors and show the outbox depth per device."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.agents.models import AgentRunLog, OutboxItem

from .conftest import make_cloud, make_local

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(make_user) -> Client:
    client = Client()
    client.force_login(make_user("staff@example.com", is_staff=True, is_superuser=True))
    return client


def test_config_and_run_pages_render_and_runs_with_errors_are_one_filter_away(staff_client, make_user):
    owner = make_user("owner@example.com")
    config = make_local(owner)
    make_cloud(owner)
    AgentRunLog.objects.create(
        user=owner, agent_id=config.id, agent_type="local", status="error", errors=["device timed out"]
    )
    AgentRunLog.objects.create(user=owner, agent_id=config.id, agent_type="local", status="success")

    assert staff_client.get("/admin/agents/localagentconfig/").status_code == 200
    assert staff_client.get("/admin/agents/cloudagentconfig/").status_code == 200
    with_errors = staff_client.get("/admin/agents/agentrunlog/?has_errors=yes")
    assert with_errors.status_code == 200
    assert "device timed out" in with_errors.content.decode()
    assert with_errors.context["cl"].result_count == 1


def test_outbox_shows_pending_depth_per_device_without_payloads(staff_client, make_user):
    owner = make_user("owner@example.com")
    for _ in range(3):
        OutboxItem.objects.create(user=owner, device_id="laptop-1", table="tasks", payload_ciphertext=b"secret")
    OutboxItem.objects.create(
        user=owner, device_id="laptop-1", table="tasks", payload_ciphertext=b"x", status="delivered"
    )

    page = staff_client.get("/admin/agents/outboxitem/")

    assert page.status_code == 200
    assert [row.device_pending_count for row in page.context["cl"].result_list] == [3, 3, 3, 3]
    assert b"secret" not in page.content
