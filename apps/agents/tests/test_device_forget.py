"""Forgetting a device through the devices app unbinds and pauses the local agents that read it."""

from __future__ import annotations

import uuid

import pytest
from asgiref.sync import sync_to_async
from rest_framework.test import APIClient

from apps.accounts.tokens import tokens_issue
from apps.agents.extraction import ProposedItem
from apps.agents.models import LocalAgentConfig, OutboxItem
from apps.agents.outbox import outbox_items_create

from .conftest import start_run

pytestmark = pytest.mark.django_db(transaction=True)


def _call(user, method: str, path: str):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens_issue(user=user).access_token}")
    return getattr(client, method)(path)


async def api(user, method: str, path: str):
    """A REST call as ``user``, off the event loop (the socket tests run on it)."""
    return await sync_to_async(_call)(user, method, path)


async def test_devices_lists_the_agents_bound_to_each_device(devices, user, make_local_config, tmp_path):
    await devices(user, device_id="laptop")
    config = await make_local_config("laptop", [str(tmp_path)])

    body = (await api(user, "get", "/api/v1/devices")).json()

    assert [(d["device_id"], d["bound_agents"]) for d in body] == [("laptop", [str(config.id)])]


async def test_forgetting_a_device_unbinds_and_pauses_its_agents_with_a_reason(
    devices, user, make_local_config, tmp_path
):
    # given an agent on the laptop, one on another device, and an item waiting for the laptop
    await devices(user, device_id="laptop")
    on_laptop = await make_local_config("laptop", [str(tmp_path)])
    elsewhere = await make_local_config("desktop", [str(tmp_path)])
    run = await start_run(on_laptop)
    item_id = uuid.uuid4()
    await sync_to_async(outbox_items_create)(
        user_id=user.id, run_id=run.id, device_id="laptop", items=[(item_id, ProposedItem("tasks", {"title": "x"}))]
    )

    # when
    response = await api(user, "delete", "/api/v1/devices/laptop")

    # then
    assert response.status_code == 204
    paused = await sync_to_async(LocalAgentConfig.objects.get)(id=on_laptop.id)
    assert (paused.device_id, paused.enabled) == ("", False)
    assert "laptop" in paused.paused_reason
    untouched = await sync_to_async(LocalAgentConfig.objects.get)(id=elsewhere.id)
    assert (untouched.device_id, untouched.enabled, untouched.paused_reason) == ("desktop", True, "")
    assert (await sync_to_async(OutboxItem.objects.get)(id=item_id)).device_id == ""
    listed = {a["id"]: a for a in (await api(user, "get", "/api/v1/agents/local")).json()}
    assert listed[str(on_laptop.id)]["paused_reason"] == paused.paused_reason
