"""The device rows of hellos arriving together, taken over in one statement per batch.

A reconnect storm brings thousands of hellos within seconds, each taking over its known device's
row. One statement each cost a thread hop and a round trip per hello, and the hops (asgiref's
machinery on the event loop) were a good part of the loop's time in the storm. Here each event loop
keeps one batch in flight: the hellos arriving while it runs go together (up to ``BATCH``) in the
next statement. A lone hello waits for nothing. A new device (no row yet) is answered None and
made by ``presence.device_connect``, which also enforces the per-user cap.
"""

from __future__ import annotations

from apps.core.group_commit import GroupCommit, loop_local

from . import presence
from .presence import Reconnect

# Hellos taken over in one statement at most.
BATCH = 500


def _reconnect_many(reconnects: list[Reconnect]) -> list[str | None]:
    return presence.devices_reconnect(reconnects=reconnects)


_reconnects = loop_local(lambda: GroupCommit(_reconnect_many, max_batch=BATCH, own_thread=True))


async def device_reconnect(
    *, user_id: str, device_id: str, channel_name: str, agent_ids: list[str], name: str | None, platform: str | None
) -> str | None:
    """The channel this hello's device was held on before ("" if none), or None if the device has no
    row yet (taken over with the other hellos arriving now)."""
    return await _reconnects().submit(
        Reconnect(user_id, device_id, channel_name, list(agent_ids), name or "", platform or "")
    )
