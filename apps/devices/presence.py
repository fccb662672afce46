"""Presence writes for the socket: connect, flush (last_seen + lease), disconnect.

These run in a worker thread (a known device's reconnect with the other hellos arriving together,
``presence_connect``; a new device's connect and every disconnect in the socket database threads,
``socket_db``; the flush through ``database_sync_to_async``); the consumer calls them on hello, every
DEVICE_PRESENCE_FLUSH_INTERVAL and on close, never per frame.
"""

from __future__ import annotations

import enum
import json
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from django.conf import settings
from django.db import connection, models, transaction
from django.utils import timezone

from apps.accounts.models import User

from .errors import DeviceLimitError
from .models import Device


class PresenceEntry(NamedTuple):
    """What the process-wide presence flush needs from one socket (``DeviceConsumer.presence_entry``)."""

    user_id: str
    device_id: str
    channel_name: str
    last_seen: float  # unix time
    token_family: str | None


def lease_seconds() -> float:
    # Survives one missed flush plus a full heartbeat cycle before the device stops counting as online.
    return (
        2 * max(settings.DEVICE_PRESENCE_FLUSH_INTERVAL, settings.DEVICE_PING_INTERVAL) + settings.DEVICE_PONG_TIMEOUT
    )


def device_connect(
    *,
    user: User,
    device_id: str,
    channel_name: str,
    agent_ids: list[str],
    name: str | None = None,
    platform: str | None = None,
) -> str:
    """Record that ``channel_name`` now holds the device; return the channel it replaced ("" if none).

    A user keeps at most DEVICE_MAX_PER_USER device rows: a new device recycles the row of the
    least recently seen offline one, and is refused (DeviceLimitError) when all of them are online.
    """
    now = timezone.now()
    # A known device (a reconnect, what a storm is made of) is one statement on its own row: one
    # round trip, no transaction, and no lock on its user. Locking the user serialised a user's
    # devices, so a storm's reconnects queued per user behind each other's open transactions.
    reconnect = Reconnect(str(user.pk), device_id, channel_name, agent_ids, name or "", platform or "")
    found = devices_reconnect(reconnects=[reconnect])[0]
    if found is not None:
        return found
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=user.pk).first()  # serialise a user's new devices
        # Another socket of this device may have made the row while this one waited for the lock.
        found = devices_reconnect(reconnects=[reconnect])[0]
        if found is not None:
            return found
        _make_room(user=user, now=now)
        Device.objects.create(
            user=user,
            device_id=device_id,
            first_seen_at=now,
            name=name or "",
            platform=platform or "",
            channel_name=channel_name,
            is_online=True,
            last_seen_at=now,
            lease_expires_at=now + timedelta(seconds=lease_seconds()),
            agent_ids=agent_ids,
        )
        return ""


class Reconnect(NamedTuple):
    """A hello's take-over of its device's row (``devices_reconnect``)."""

    user_id: str
    device_id: str
    channel_name: str
    agent_ids: list[str]
    name: str
    platform: str


def devices_reconnect(*, reconnects: list[Reconnect]) -> list[str | None]:
    """``device_connect`` for many known devices in one statement: for each, the channel it replaced
    ("" if none), or None if it has no row (a new device: ``device_connect`` makes it) or came twice.

    A device's second hello in the same batch is left to ``device_connect`` too, so it takes over
    from the first as a later hello would."""
    firsts: dict[tuple[str, str], int] = {}
    for n, reconnect in enumerate(reconnects):
        firsts.setdefault((reconnect.user_id, reconnect.device_id), n)
    if not firsts:
        return []
    now = timezone.now()
    table = Device._meta.db_table
    values = ", ".join(["(%s::uuid, %s, %s, %s::jsonb, %s, %s)"] * len(firsts))
    params: list = []
    for n in firsts.values():
        r = reconnects[n]
        params += [r.user_id, r.device_id, r.channel_name, json.dumps(r.agent_ids), r.name, r.platform]
    with connection.cursor() as cursor:
        # The rows are locked in one order (by id), so two processes' batches cannot deadlock.
        cursor.execute(
            f"""WITH v (user_id, device_id, channel_name, agent_ids, name, platform) AS (VALUES {values}),
            before AS (
                SELECT t.id, t.is_online AS was_online, t.channel_name AS held_by, v.*
                FROM {table} AS t JOIN v ON t.user_id = v.user_id AND t.device_id = v.device_id
                ORDER BY t.id FOR UPDATE OF t
            )
            UPDATE {table} AS d SET channel_name = before.channel_name, is_online = true, last_seen_at = %s,
                lease_expires_at = %s, agent_ids = before.agent_ids, updated_at = %s,
                name = COALESCE(NULLIF(before.name, ''), d.name),
                platform = COALESCE(NULLIF(before.platform, ''), d.platform)
            FROM before WHERE d.id = before.id
            RETURNING before.user_id, before.device_id, before.was_online, before.held_by""",  # noqa: S608  (table name from the model, values bound)
            [*params, now, now + timedelta(seconds=lease_seconds()), now],
        )
        rows = cursor.fetchall()
    found: dict[tuple[str, str], str] = {}
    for user_id, device_id, was_online, held_by in rows:
        key = (str(user_id), device_id)
        found[key] = held_by if was_online and held_by != reconnects[firsts[key]].channel_name else ""
    return [
        found.get((r.user_id, r.device_id)) if firsts[(r.user_id, r.device_id)] == n else None
        for n, r in enumerate(reconnects)
    ]


def _make_room(*, user: User, now: datetime) -> None:
    limit = settings.DEVICE_MAX_PER_USER
    rows = Device.objects.filter(user=user)
    excess = rows.count() - limit + 1
    if excess <= 0:
        return
    offline = rows.filter(models.Q(is_online=False) | models.Q(lease_expires_at__lte=now) | models.Q(channel_name=""))
    # Locked as they are chosen, skipping a row a reconnect is taking over right now (it holds the
    # row, not the user): its device is coming online, so it is not for recycling.
    recyclable = list(
        offline.select_for_update(skip_locked=True).order_by("last_seen_at").values_list("pk", flat=True)[:excess]
    )
    if len(recyclable) < excess:
        raise DeviceLimitError(limit)
    Device.objects.filter(pk__in=recyclable).delete()


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


def devices_presence_flush(
    *, entries: list[PresenceEntry]
) -> tuple[set[tuple[str, str]], dict[str | None, SessionState]]:
    """One process's presence flush for all its sockets, in a handful of queries.

    Writes last_seen and renews the lease where the channel still holds the device; returns which
    devices are still held and the state of every session, so sockets can close themselves.
    """
    from apps.accounts.models import TokenFamily

    held: set[tuple[str, str]] = set()
    lease = timezone.now() + timedelta(seconds=lease_seconds())
    table = Device._meta.db_table
    with connection.cursor() as cursor:
        for start in range(0, len(entries), 500):
            chunk = entries[start : start + 500]
            values = ", ".join(["(%s::uuid, %s, %s, %s::timestamptz)"] * len(chunk))
            params: list = []
            for entry in chunk:
                seen = datetime.fromtimestamp(entry.last_seen, tz=UTC)
                params += [entry.user_id, entry.device_id, entry.channel_name, seen]
            cursor.execute(
                f"""UPDATE {table} AS d SET last_seen_at = v.last_seen, is_online = true, lease_expires_at = %s
                FROM (VALUES {values}) AS v(user_id, device_id, channel_name, last_seen)
                WHERE d.user_id = v.user_id AND d.device_id = v.device_id AND d.channel_name = v.channel_name
                RETURNING d.user_id, d.device_id""",  # noqa: S608  (table name from the model, values bound)
                [lease, *params],
            )
            held.update((str(user_id), device_id) for user_id, device_id in cursor.fetchall())
    families = {entry.token_family for entry in entries if entry.token_family}
    active = {
        str(f)
        for f in TokenFamily.objects.filter(id__in=families, revoked_at__isnull=True, user__is_active=True).values_list(
            "id", flat=True
        )
    }
    states: dict[str | None, SessionState] = {None: SessionState.REVOKED}
    ended = {e.token_family: e.user_id for e in entries if e.token_family and e.token_family not in active}
    active_users = {
        str(u) for u in User.objects.filter(id__in=set(ended.values()), is_active=True).values_list("id", flat=True)
    }
    for family in families:
        if family in active:
            states[family] = SessionState.ACTIVE
        else:
            states[family] = SessionState.REVOKED if ended[family] in active_users else SessionState.DEACTIVATED
    return held, states


def device_disconnect(*, user_id, device_id: str, channel_name: str, last_seen_at: datetime) -> None:
    """Mark offline, unless a newer socket already took the device over."""
    Device.objects.filter(user_id=user_id, device_id=device_id, channel_name=channel_name).update(
        is_online=False, channel_name="", lease_expires_at=None, last_seen_at=last_seen_at
    )
