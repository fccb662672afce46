"""The worker threads the device socket's database calls run in: the session check, the device row,
and a chat turn's memory reads and episode write (apps/assistant/memory_bridge.py).

``database_sync_to_async`` is thread-sensitive by default, and under ASGI that means one thread for
the whole process: every such call waits for the one before. In a reconnect storm the socket's
session checks and device rows (thousands, a few round trips each) queue there while the event loop
idles; profiled under a 600-device storm, that one thread was busy about 85 % of the time and the
loop mostly waited. These calls keep no state in their thread (each takes a connection from the
database pool and gives it back), so they run side by side in a pool of DEVICE_DB_THREADS threads,
which must stay below the database pool's size (DATABASE_POOL_MAX_SIZE) to leave it room. A chat
turn's memory reads use them too: in the one thread-sensitive thread the next turn's budget check
queued behind the previous turn's episode write.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_executor_size = 0  # the size ``_executor`` was made with (the pool keeps its own privately)


def _pool() -> ThreadPoolExecutor:
    global _executor, _executor_size
    size = settings.DEVICE_DB_THREADS
    with _lock:
        # A changed size (tests, a settings override) takes effect on the next call; calls already
        # handed to the previous pool finish there.
        if _executor is None or _executor_size != size:
            if _executor is not None:
                _executor.shutdown(wait=False)
            _executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="device-db")
            _executor_size = size
        return _executor


def socket_db(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` as a coroutine function run in the socket database threads (connections
    cleaned up around it, as ``database_sync_to_async`` does)."""
    return database_sync_to_async(function, thread_sensitive=False, executor=_pool())
