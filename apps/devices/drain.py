"""Draining this process's device sockets when it is asked to stop (SIGTERM), for rolling deploys.

uvicorn's own shutdown closes every socket at once (1012, no delay) and then waits
``--timeout-graceful-shutdown`` for the connections it knows; it knows nothing of the requests,
which outlive their sockets. So the ASGI lifespan startup puts a SIGTERM handler in front of
uvicorn's. On SIGTERM it

1. refuses new sockets (accepted, then closed 1012 with a reconnect delay),
2. tells every device to move: close 1012 "service restart" with the reason
   ``{"reconnect_after_ms": N}``, N spread uniformly over ``DEVICE_RECONNECT_WINDOW`` so the
   devices do not all come back at the same moment,
3. keeps running the requests this process holds (a device that ``resume``s on another process
   gets their frames through the node relay) until they end or ``DEVICE_DRAIN_DEADLINE`` passes;
   requests still running then are cancelled and end with a ``server_restarting`` error,
4. and only then hands the signal to uvicorn, whose shutdown finds nothing left to close.

A second SIGTERM during the drain goes straight to uvicorn (stop now).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import signal
import threading
from collections.abc import Callable
from typing import Any

from django.conf import settings

from apps.core.loop_db import loop_pools_close

from . import connections, streams
from .close_codes import DeviceCloseCode

logger = logging.getLogger(__name__)

# After the deadline, how long cancelled requests get to write their last frames.
_CANCEL_GRACE_SECONDS = 2.0

_draining = threading.Event()


def draining() -> bool:
    """True once this process was asked to stop: sockets are turned away, requests run on."""
    return _draining.is_set()


def reconnect_reason() -> str:
    """The close reason of a 1012: when the device should reconnect (to another process)."""
    window_ms = int(settings.DEVICE_RECONNECT_WINDOW * 1000)
    return json.dumps({"reconnect_after_ms": random.randint(0, max(window_ms, 0))}, separators=(",", ":"))  # noqa: S311


async def drain_run() -> None:
    """Move this process's devices elsewhere and wait for its requests (bounded by the deadline)."""
    _draining.set()
    consumers = connections.local_consumers()
    logger.info("devices: draining; moving %d sockets", len(consumers))
    await asyncio.gather(
        *(consumer.close_with(DeviceCloseCode.SERVICE_RESTART, reason=reconnect_reason()) for consumer in consumers),
        return_exceptions=True,
    )
    if await streams.streams_wait(settings.DEVICE_DRAIN_DEADLINE):
        left = streams.streams_cancel_all()
        logger.warning("devices: drain deadline passed; cancelled %d running requests", left)
        await streams.streams_wait(_CANCEL_GRACE_SECONDS)
    logger.info("devices: drained")


def drain_install(loop: asyncio.AbstractEventLoop) -> None:
    """Put the drain in front of the current SIGTERM handler (uvicorn's); main thread only."""
    if threading.current_thread() is not threading.main_thread():
        return  # signals reach the main thread only: an embedded server (tests) is stopped directly
    previous = signal.getsignal(signal.SIGTERM)

    def pass_on(signum: int) -> None:
        if callable(previous):
            previous(signum, None)
        else:  # no Python handler before ours: let the signal do what it did
            signal.signal(signum, previous)
            signal.raise_signal(signum)

    def on_sigterm(signum: int, frame: Any) -> None:
        if draining():
            pass_on(signum)
            return
        _draining.set()
        loop.call_soon_threadsafe(_start, loop, lambda: pass_on(signum))

    signal.signal(signal.SIGTERM, on_sigterm)


def _start(loop: asyncio.AbstractEventLoop, then: Callable[[], None]) -> None:
    task = loop.create_task(drain_run(), name="devices-drain")

    def done(task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error("devices: the drain failed", exc_info=task.exception())
        then()

    task.add_done_callback(done)


async def lifespan_app(scope: dict, receive: Callable, send: Callable) -> None:
    """The ASGI lifespan protocol: install the drain at startup; close the loop's reads pool at shutdown."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            drain_install(asyncio.get_running_loop())
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await loop_pools_close()  # the loop's database connections (apps.core.loop_db), said goodbye to
            await send({"type": "lifespan.shutdown.complete"})
            return
