"""Presence writes for the socket: connect, flush (last_seen + lease), disconnect.

These run in a thread through ``database_sync_to_async``; the consumer calls them on hello,
every DEVICE_PRESENCE_FLUSH_INTERVAL and on close, never per frame.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import User

from .models import Device


def lease_seconds() -> float:
    # Survives one missed flush plus a full heartbeat cycle before the device stops counting as online.
    return (
        2 * max(settings.DEVICE_PRESENCE_FLUSH_INTERVAL, settings.DEVICE_PING_INTERVAL) + settings.DEVICE_PONG_TIMEOUT
    )


@transaction.atomic
def device_connect(
    *,
    user: User,
    device_id: str,
    channel_name: str,
    agent_ids: list[str],
    name: str | None = None,
    platform: str | None = None,
) -> tuple[Device, str]:
    """Record that ``channel_name`` now holds the device; return it and the channel it replaced ("" if none)."""
    now = timezone.now()
    device, _created = Device.objects.select_for_update().get_or_create(
        user=user,
        device_id=device_id,
        defaults={"first_seen_at": now, "name": name or "", "platform": platform or ""},
    )
    replaced = device.channel_name if device.is_online and device.channel_name != channel_name else ""
    device.channel_name = channel_name
    device.is_online = True
    device.last_seen_at = now
    device.lease_expires_at = now + timedelta(seconds=lease_seconds())
    device.agent_ids = agent_ids
    if name:
        device.name = name
    if platform:
        device.platform = platform
    device.save()
    return device, replaced


class SessionState(enum.StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"
    DEACTIVATED = "deactivated"


def session_state(*, user_id, family_id: str | None) -> SessionState:
    from apps.accounts.tokens import session_is_active

    if session_is_active(user_id=user_id, family_id=family_id) is not None:
        return SessionState.ACTIVE
    if not User.objects.filter(id=user_id, is_active=True).exists():
        return SessionState.DEACTIVATED
    return SessionState.REVOKED


def device_presence_flush(
    *, user_id, device_id: str, channel_name: str, last_seen_at: datetime, family_id: str | None
) -> tuple[bool, SessionState]:
    """Write last_seen and renew the lease if this channel still holds the device; re-check the session.

    Returns (still_holds_device, session_state) so the consumer can close itself if either is lost.
    """
    updated = Device.objects.filter(user_id=user_id, device_id=device_id, channel_name=channel_name).update(
        last_seen_at=last_seen_at,
        is_online=True,
        lease_expires_at=timezone.now() + timedelta(seconds=lease_seconds()),
    )
    return bool(updated), session_state(user_id=user_id, family_id=family_id)


def device_disconnect(*, user_id, device_id: str, channel_name: str, last_seen_at: datetime) -> None:
    """Mark offline, unless a newer socket already took the device over."""
    Device.objects.filter(user_id=user_id, device_id=device_id, channel_name=channel_name).update(
        is_online=False, channel_name="", lease_expires_at=None, last_seen_at=last_seen_at
    )
