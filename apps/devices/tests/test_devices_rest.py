"""GET devices and DELETE devices/{device_id}: the user's installs, online per the presence index,
and forgetting one (its live socket is closed)."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.tokens import tokens_issue
from apps.devices.close_codes import DeviceCloseCode
from apps.devices.models import Device

from .conftest import device_row

pytestmark = pytest.mark.django_db(transaction=True)

DEVICES = "/api/v1/devices"


def _call(user, method: str, path: str):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens_issue(user=user).access_token}")
    return getattr(client, method)(path)


async def api(user, method: str, path: str):
    """A REST call as ``user``, off the event loop (the socket tests run on it)."""
    return await sync_to_async(_call)(user, method, path)


async def test_devices_lists_each_install_with_its_presence(devices, user):
    # given one device online now, and one seen yesterday
    await devices(user, device_id="laptop", name="Work laptop")
    yesterday = timezone.now() - timezone.timedelta(days=1)
    await sync_to_async(Device.objects.create)(user=user, device_id="desktop", last_seen_at=yesterday)

    # when
    response = await api(user, "get", DEVICES)

    # then a bare array, most recently seen first, with the seed's fields
    assert response.status_code == 200
    body = response.json()
    assert [(d["device_id"], d["name"], d["online"], d["bound_agents"]) for d in body] == [
        ("laptop", "Work laptop", True, []),
        ("desktop", None, False, []),
    ]
    assert all(isinstance(d["last_seen_at"], str) for d in body)


async def test_a_device_whose_process_died_is_offline_although_its_row_says_online(devices, user):
    # given a row claiming a live socket that no process holds (the index has another, live, entry)
    await devices(user, device_id="laptop")
    lease = timezone.now() + timezone.timedelta(minutes=5)
    await sync_to_async(Device.objects.create)(
        user=user, device_id="ghost", is_online=True, channel_name="specific.gone!x", lease_expires_at=lease
    )

    # when
    body = (await api(user, "get", DEVICES)).json()

    # then
    assert {d["device_id"]: d["online"] for d in body} == {"laptop": True, "ghost": False}


async def test_devices_never_shows_another_users_devices(devices, user, make_user):
    other = await sync_to_async(make_user)()
    await devices(other, device_id="theirs")

    body = (await api(user, "get", DEVICES)).json()

    assert body == []


async def test_forgetting_a_device_closes_its_socket_and_removes_it(devices, user):
    # given
    client = await devices(user, device_id="laptop")

    # when
    response = await api(user, "delete", f"{DEVICES}/laptop")

    # then
    assert response.status_code == 204
    assert await asyncio.wait_for(client.wait_closed(), 10) == DeviceCloseCode.DEVICE_FORGOTTEN
    assert await device_row(user, "laptop") is None
    assert (await api(user, "get", DEVICES)).json() == []


async def test_forgetting_another_users_device_is_not_found_and_leaves_it(devices, user, make_user):
    # given
    other = await sync_to_async(make_user)()
    await devices(other, device_id="theirs")

    # when
    response = await api(user, "delete", f"{DEVICES}/theirs")

    # then
    assert response.status_code == 404
    assert response.json()["code"] == "device_not_found"
    assert (await device_row(other, "theirs")).is_online
