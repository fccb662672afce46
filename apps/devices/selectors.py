"""Reads about devices: who is online, and where (which channel holds the socket).

Liveness has one source of truth: the Redis presence index (``presence_index``: the holder each
socket announces on hello and withdraws on close, believed only while the holder's node is
alive). ``devices_online`` and ``device_online_channel`` read it; the ``Device`` rows are history
and listing (name, platform, last_seen) and the fallback ``call_device`` uses when the index has
no entry at all.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import timezone

from apps.core.redis_pool import cache_redis

from . import presence_index
from .bindings import bound_agents
from .models import Device
from .node import ALIVE_KEY


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def devices_online(*, user_ids: Iterable[Any]) -> set[tuple[Any, str]]:
    """``(user_id, device_id)`` of every device of these users held by a live socket, from the
    presence index in two round trips (the users' entries, then their nodes' liveness); the
    user ids come back as given (a UUID stays a UUID). Sync, for schedulers and tasks."""
    given = {str(user_id): user_id for user_id in user_ids}
    if not given:
        return set()
    client = cache_redis()
    with client.pipeline(transaction=False) as pipe:
        for user_id in given:
            pipe.hgetall(presence_index.KEY.format(user_id=user_id))
        hashes = pipe.execute()
    held: list[tuple[str, str, str]] = []
    for user_id, entries in zip(given, hashes, strict=True):
        for device_id, value in entries.items():
            parts = _text(value).split(" ")
            if len(parts) == 3:  # "channel node last_seen"
                held.append((user_id, _text(device_id), parts[1]))
    nodes = sorted({node for _u, _d, node in held})
    with client.pipeline(transaction=False) as pipe:
        for node in nodes:
            pipe.exists(ALIVE_KEY.format(node=node))
        alive = {node for node, exists in zip(nodes, pipe.execute(), strict=True) if exists}
    return {(given[user_id], device_id) for user_id, device_id, node in held if node in alive}


async def device_online_channel(*, user_id: Any, device_id: str) -> str | None:
    """The channel of the live socket holding this device of this user, or None (offline)."""
    lookup = await presence_index.presence_locate(user_id=str(user_id), device_id=device_id)
    return lookup.location.channel if lookup.location is not None else None


def device_list_online(*, user_id) -> list[Device]:
    """The user's devices held by a live socket, most recently seen first."""
    return list(
        Device.objects.filter(user_id=user_id, is_online=True, lease_expires_at__gt=timezone.now())
        .exclude(channel_name="")
        .order_by("-last_seen_at")
    )


def device_get_online(*, user_id, device_id: str | None = None) -> Device | None:
    """The row of the named online device of this user (or of the most recently seen one); only
    ``call_device``'s fallback when the presence index has no entry at all."""
    qs = Device.objects.filter(user_id=user_id, is_online=True, lease_expires_at__gt=timezone.now()).exclude(
        channel_name=""
    )
    if device_id is not None:
        qs = qs.filter(device_id=device_id)
    return qs.order_by("-last_seen_at").first()


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

    "Online" is the presence index's answer (``devices_online``), the one source of truth.
    """
    rows = Device.objects.filter(user_id=user_id).order_by("-last_seen_at")
    online = {device_id for _user, device_id in devices_online(user_ids=[user_id])}
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
