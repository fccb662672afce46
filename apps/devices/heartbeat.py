"""One heartbeat timer per process (per event loop), not a task per socket.

Every DEVICE_PING_INTERVAL the sockets this loop holds (``connections``) get a ``ping`` frame in
one pass; a socket whose ``pong`` has not come DEVICE_PONG_TIMEOUT after its ping is closed with
HEARTBEAT_TIMEOUT. A socket keeps one number for it (``pong_due``: until when it waits for a pong,
0 when it waits for none). The timer wakes at least once a second so a changed interval takes
effect quickly.

A socket that has stopped reading (its answer handlers are full, ``reading_paused``) cannot read the
pong it was sent: its pong is not overdue while it is paused, and its deadline moves by the time paused.
Not for ever: a pause longer than ``read_pause_max()`` (twice DEVICE_TOOL_CALL_TIMEOUT) is a handler
that will not end; its pong is overdue, the socket is closed as silent and its handlers are cancelled
(``reading_stalled``).

The same timer closes a socket whose access token has expired (TOKEN_EXPIRED, within a second of
``token_expires_at``): the sockets it watches wait in one heap by expiry instead of a timer each.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING

from django.conf import settings

from apps.core.cancellation import raise_if_cancelling

from . import connections
from .errors import DeviceDisconnectedError
from .frames import outgoing_json, parse_outgoing

if TYPE_CHECKING:
    from .device_socket import DeviceSocket

logger = logging.getLogger(__name__)

PING_TEXT = outgoing_json(parse_outgoing({"type": "ping"}))

_tasks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task] = weakref.WeakKeyDictionary()

# Per loop: (expiry, tie-breaker, socket) of the sockets whose token expiry is watched. A socket is
# held weakly (one that went away is not kept until its token would have expired) and its entry is
# stale once its ``token_expires_at`` moved (an ``auth`` frame: a new entry was pushed).
_Expiry = tuple[float, int, "weakref.ref[DeviceSocket]"]
_expiries: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[_Expiry]] = weakref.WeakKeyDictionary()
_order = itertools.count()


def ensure_running() -> None:
    loop = asyncio.get_running_loop()
    task = _tasks.get(loop)
    if task is None or task.done():
        _tasks[loop] = loop.create_task(_run(), name="devices-heartbeat")


def expiry_watch(consumer: DeviceSocket) -> None:
    """Close ``consumer`` with TOKEN_EXPIRED once ``consumer.token_expires_at`` (epoch seconds) passes."""
    heap = _expiries.setdefault(asyncio.get_running_loop(), [])
    heapq.heappush(heap, (consumer.token_expires_at, next(_order), weakref.ref(consumer)))
    ensure_running()


def _close_expired(now: float) -> None:
    heap = _expiries.get(asyncio.get_running_loop())
    while heap and heap[0][0] <= now:
        expires_at, _, ref = heapq.heappop(heap)
        consumer = ref()
        if consumer is not None and consumer.token_expires_at == expires_at and not consumer.torn_down:
            consumer.token_expires_at = 0.0
            consumer.token_expired()


async def _run() -> None:
    last_ping = time.monotonic()
    check_at: float | None = None
    while True:
        now = time.monotonic()
        next_ping = last_ping + settings.DEVICE_PING_INTERVAL
        wake = min(next_ping, check_at if check_at is not None else next_ping, now + 1.0)
        await asyncio.sleep(max(wake - now, 0.0))
        try:
            _close_expired(time.time())
            now = time.monotonic()
            if check_at is not None and now >= check_at:
                check_at = _close_silent(now)
            if now >= last_ping + settings.DEVICE_PING_INTERVAL:
                last_ping = now
                deadline = await _ping_all(now + settings.DEVICE_PONG_TIMEOUT)
                if deadline is not None and (check_at is None or deadline < check_at):
                    check_at = deadline
        except Exception:
            raise_if_cancelling()
            logger.exception("devices: heartbeat pass failed")


@contextlib.contextmanager
def reading_paused(consumer: DeviceSocket) -> Iterator[None]:
    """``consumer`` stops reading meanwhile: a pong it is owed waits unread, so its deadline waits too."""
    consumer.reading_paused_at = paused_at = time.monotonic()
    try:
        yield
    finally:
        consumer.reading_paused_at = 0.0
        due = consumer.pong_due
        if due > paused_at:  # owed a pong before or during the pause: it gets the time it waited unread
            pinged_at = due - settings.DEVICE_PONG_TIMEOUT
            consumer.pong_due = due + time.monotonic() - max(paused_at, pinged_at)


def read_pause_max() -> float:
    """How long a socket may stop reading for its answer handlers before it counts as silent. An answer
    handler hands a piece on within a tool call's time (a full run channel is retried for less); one
    that takes twice that is stuck."""
    return 2 * settings.DEVICE_TOOL_CALL_TIMEOUT


def _close_silent(now: float) -> float | None:
    """Close the sockets whose pong is overdue; the earliest deadline still running, if any."""
    earliest: float | None = None
    pause_max = read_pause_max()
    for consumer in connections.local_consumers():
        due = consumer.pong_due
        if not due:
            continue
        paused_at = consumer.reading_paused_at
        if paused_at and due > paused_at:
            if now - paused_at >= pause_max:
                # Paused too long to be waiting on anything but a handler that never ends.
                consumer.pong_due = 0.0
                consumer.reading_stalled()
                continue
            # It cannot read its pong meanwhile (``reading_paused``): not overdue; look again in a second.
            due = now + 1.0
        if now >= due:
            consumer.pong_due = 0.0
            consumer.heartbeat_missed()
        elif earliest is None or due < earliest:
            earliest = due
    return earliest


async def _ping_all(deadline: float) -> float | None:
    """Ping every socket that is not already waiting for a pong; the earliest pong deadline."""
    earliest: float | None = None
    for consumer in connections.local_consumers():
        if not consumer.accepting_calls:
            continue
        if not consumer.pong_due:
            consumer.pong_due = deadline
            await _ping(consumer, deadline)
        if consumer.pong_due and (earliest is None or consumer.pong_due < earliest):
            earliest = consumer.pong_due
    return earliest


async def _ping(consumer: DeviceSocket, deadline: float) -> None:
    # Bounded: a client that stopped reading must not hold the pings of every other socket; it
    # would miss its pong anyway.
    try:
        async with asyncio.timeout(max(deadline - time.monotonic(), 0.0)):
            await consumer.send_text(PING_TEXT)
    except DeviceDisconnectedError:
        consumer.pong_due = 0.0
    except TimeoutError:
        consumer.pong_due = 0.0
        consumer.heartbeat_missed()
