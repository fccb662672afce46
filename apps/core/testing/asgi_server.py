"""The real ASGI server (uvicorn serving ``adiuva.asgi``) in a thread on loopback, for tests.

It runs in the test process against the test database and Redis, so tests that use it need
committed rows (``django_db(transaction=True)``).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import uvicorn
from django.conf import settings

from apps.core.loop_db import loop_pools_close


def uvicorn_config(**options) -> uvicorn.Config:
    """uvicorn serving ``adiuva.asgi`` as the Procfile does (the server itself refuses frames over
    the app's cap and queues few), quiet, without lifespan events unless asked; ``options`` add
    host/port and may override the rest."""
    config = {
        "lifespan": "off",
        "log_level": "warning",
        "access_log": False,
        "ws": "websockets-sansio",
        "ws_max_size": settings.DEVICE_WS_MAX_SIZE,
        "ws_max_queue": settings.DEVICE_WS_MAX_QUEUE,
        "ws_per_message_deflate": settings.DEVICE_WS_PER_MESSAGE_DEFLATE,
        "ws_ping_interval": None,  # as the Procfile: the device heartbeat is the socket's keepalive
    }
    return uvicorn.Config("adiuva.asgi:application", **{**config, **options})


# How long ``AsgiServerThread.stop`` lets the connections still open close on their own.
GRACEFUL_STOP_SECONDS = 1.0


class AsgiServerThread:
    """uvicorn in a thread with its own event loop: callers in the test's loop reach it over
    sockets and the channel layer, exactly like another process would."""

    def __init__(self, *, name: str = "asgi-test-server") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn_config())
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self.server.serve(sockets=[self.sock]))
        self.loop.run_until_complete(loop_pools_close())  # the test database can then be dropped

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test ASGI server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=GRACEFUL_STOP_SECONDS)
        if self.thread.is_alive():
            # uvicorn waits for every open connection to close, without a bound; a socket a test left
            # open held the session's end for the join's whole timeout (and the test database's drop
            # behind it). Past the grace period, stop waiting for them.
            self.server.force_exit = True
            self.thread.join(timeout=10)

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def run(self, coro, timeout: float = 10):
        """Run ``coro`` on the server's event loop (the socket's own process and loop)."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)
