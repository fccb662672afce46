"""The device rows of hellos arriving together, taken over in one statement per batch.

A reconnect storm brings thousands of hellos within seconds, each taking over its known device's
row. One statement each cost a thread hop and a round trip per hello, and the hops (asgiref's
machinery on the event loop) were a good part of the loop's time in the storm. Here each event loop
keeps one batch in flight: the hellos arriving while it runs go together (up to ``BATCH``) in the
next statement. A lone hello waits for nothing. A new device (no row yet) is answered None and
made by ``presence.device_connect``, which also enforces the per-user cap.

A value PostgreSQL refuses fails the whole statement: the batch is then taken over one statement
per hello, so only the hello holding that value is refused (``DeviceHelloRefusedError``).
"""

from __future__ import annotations

from django.db import DataError, IntegrityError

from apps.core.group_commit import GroupCommit, loop_local

from . import presence
from .errors import DeviceHelloRefusedError
from .presence import Reconnect

# Hellos taken over in one statement at most.
BATCH = 500

# What the database says of a value it cannot take (SQLSTATE classes 22 and 23); any other failure
# (the database gone, say) is no single hello's fault and still fails the batch.
REFUSED_VALUES = (DataError, IntegrityError)


def _reconnect_many(reconnects: list[Reconnect]) -> list[str | DeviceHelloRefusedError | None]:
    try:
        return list(presence.devices_reconnect(reconnects=reconnects))
    except REFUSED_VALUES:
        if len(reconnects) == 1:
            return [DeviceHelloRefusedError()]
    return [_reconnect_alone(reconnect) for reconnect in reconnects]


def _reconnect_alone(reconnect: Reconnect) -> str | DeviceHelloRefusedError | None:
    try:
        return presence.devices_reconnect(reconnects=[reconnect])[0]
    except REFUSED_VALUES:
        return DeviceHelloRefusedError()


_reconnects = loop_local(lambda: GroupCommit(_reconnect_many, max_batch=BATCH, own_thread=True))


async def device_reconnect(
    *, user_id: str, device_id: str, channel_name: str, agent_ids: list[str], name: str | None, platform: str | None
) -> str | None:
    """The channel this hello's device was held on before ("" if none), or None if the device has no
    row yet (taken over with the other hellos arriving now). DeviceHelloRefusedError if the database
    refuses one of the hello's values."""
    found = await _reconnects().submit(
        Reconnect(user_id, device_id, channel_name, list(agent_ids), name or "", platform or "")
    )
    if isinstance(found, DeviceHelloRefusedError):
        raise found
    return found
