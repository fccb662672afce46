"""Reads about devices: who is online, and where (which channel holds the socket)."""

from __future__ import annotations

from django.utils import timezone

from .models import Device


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
