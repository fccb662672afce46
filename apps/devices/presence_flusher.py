"""One presence flush per process (per event loop), not one per socket.

Every DEVICE_PRESENCE_FLUSH_INTERVAL it writes last_seen and renews the lease of all sockets this
loop holds in one UPDATE, re-checks their sessions in one query, and tells each socket whether to
close (session revoked, user deactivated, device taken over). It wakes at least once a second so
a changed interval takes effect quickly.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref

from channels.db import database_sync_to_async
from django.conf import settings

from apps.core.cancellation import raise_if_cancelling

from . import connections
from .presence import devices_presence_flush

logger = logging.getLogger(__name__)

_tasks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task] = weakref.WeakKeyDictionary()


def ensure_running() -> None:
    loop = asyncio.get_running_loop()
    task = _tasks.get(loop)
    if task is None or task.done():
        _tasks[loop] = loop.create_task(_run(), name="devices-presence-flusher")


async def _run() -> None:
    last = time.monotonic()
    while True:
        await asyncio.sleep(min(settings.DEVICE_PRESENCE_FLUSH_INTERVAL, 1.0))
        if time.monotonic() - last < settings.DEVICE_PRESENCE_FLUSH_INTERVAL:
            continue
        last = time.monotonic()
        consumers = [c for c in connections.local_consumers() if c.accepting_calls]
        if not consumers:
            continue
        try:
            held, states = await database_sync_to_async(devices_presence_flush)(
                entries=[c.presence_entry() for c in consumers]
            )
        except Exception:
            raise_if_cancelling()
            logger.exception("devices: presence flush failed")
            continue
        for consumer in consumers:
            entry = consumer.presence_entry()
            consumer.presence_verdict(holds=(entry.user_id, entry.device_id) in held, state=states[entry.token_family])
