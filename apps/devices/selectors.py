"""Reads about devices: who is online, and where (which channel holds the socket)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from asgiref.sync import async_to_sync
from django.utils import timezone

from .bindings import bound_agents
from .models import Device
from .presence_index import presence_held_devices


def device_list_online(*, user_id) -> list[Device]:
    """The user's devices held by a live socket, most recently seen first."""
    return list(
        Device.objects.filter(user_id=user_id, is_online=True, lease_expires_at__gt=timezone.now())
        .exclude(channel_name="")
        .order_by("-last_seen_at")
    )


def device_get_online(*, user_id, device_id: str | None = None) -> Device | None:
    """The named online device of this user (or the most recently seen one); never another user's."""
    qs = Device.objects.filter(user_id=user_id, is_online=True, lease_expires_at__gt=timezone.now()).exclude(
        channel_name=""
    )
    if device_id is not None:
        qs = qs.filter(device_id=device_id)
    return qs.order_by("-last_seen_at").first()


def device_list(*, user_id) -> list[Device]:
    return list(Device.objects.filter(user_id=user_id).order_by("-last_seen_at"))


def device_online_ids(*, user_ids) -> set[tuple]:
    """``(user_id, device_id)`` of every online device of these users, in one query (schedulers)."""
    return set(
        Device.objects.filter(user_id__in=list(user_ids), is_online=True, lease_expires_at__gt=timezone.now())
        .exclude(channel_name="")
        .values_list("user_id", "device_id")
    )


def devices_online_count() -> int:
    """Devices held by a live socket right now, across every server process."""
    return Device.objects.filter(is_online=True, lease_expires_at__gt=timezone.now()).exclude(channel_name="").count()


@dataclass(frozen=True)
class DeviceListing:
    device_id: str
    name: str
    platform: str
    online: bool
    last_seen_at: datetime
    bound_agents: list[str]


def device_listing(*, user_id) -> list[DeviceListing]:
    """The user's devices, most recently seen first, with presence and the agents bound to each.

    "Online" is the Redis presence index's answer (what tool calls use); an index knowing nothing
    of the user is confirmed in the database, as ``call_device`` does.
    """
    rows = device_list(user_id=user_id)
    held = async_to_sync(presence_held_devices)(user_id=str(user_id))
    online = set(held.device_ids) if held.entries else {d.device_id for d in device_list_online(user_id=user_id)}
    bound = bound_agents(user_id=user_id)
    return [
        DeviceListing(
            device_id=d.device_id,
            name=d.name,
            platform=d.platform,
            online=d.device_id in online,
            last_seen_at=d.last_seen_at,
            bound_agents=sorted(bound.get(d.device_id, [])),
        )
        for d in rows
    ]
