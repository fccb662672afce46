"""Django's ASGI handler with the request's sync thread taken from a pool instead of started anew.

Django runs each HTTP request inside asgiref's ``ThreadSensitiveContext``, so the request's sync code
(a sync view, sync signal receivers) runs on one thread of its own. asgiref starts that thread on the
request's first sync call (a new single-worker ``ThreadPoolExecutor``) and, when the request ends,
starts another thread to join it: two thread starts and a join per request, a fixed cost beside the
work of a small read (``bench/rest_per_process.py``).

``PooledASGIHandler`` gives the context an executor from a per-process pool of single-thread
executors, returned to the pool when the request ends, so a request's sync code still runs on one
thread, the same one from its first sync call to its last, and no other request's code runs there
meanwhile; the threads, like a WSGI server's, serve one request after another. When all
``ASGI_REQUEST_THREADS`` are in use, a request falls back to asgiref's own thread, as before.

The context is asgiref's own, without its ``executor=`` argument: a task that outlives its request
and calls sync code afterwards gets a new thread, as with Django's handler (asgiref refuses such a
call when an executor was given).
"""

from __future__ import annotations

import collections
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import django
from asgiref.sync import SyncToAsync, ThreadSensitiveContext
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler

from .loop_db import loop_reads


class RequestThreadPool:
    """Single-thread executors handed to one request at a time, most recently returned first (its
    thread and the database connection it may hold are the warmest)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._idle: collections.deque[ThreadPoolExecutor] = collections.deque()
        self._made = 0
        self._lock = threading.Lock()  # several loops (a test server thread beside the tests) may share it

    def take(self) -> ThreadPoolExecutor | None:
        with self._lock:
            if self._idle:
                return self._idle.pop()
            if self._made >= self.size:
                return None
            self._made += 1
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="request")

    def give_back(self, executor: ThreadPoolExecutor) -> None:
        with self._lock:
            self._idle.append(executor)


class PooledThreadSensitiveContext(ThreadSensitiveContext):
    """asgiref's context for one request, its thread taken from ``pool`` (when one is free)."""

    def __init__(self, pool: RequestThreadPool) -> None:
        super().__init__()
        self._pool = pool
        self._pooled: ThreadPoolExecutor | None = None

    async def __aenter__(self) -> PooledThreadSensitiveContext:
        await super().__aenter__()
        if self.token is not None:  # this context is the request's (not nested in another one)
            self._pooled = self._pool.take()
            if self._pooled is not None:
                SyncToAsync.context_to_thread_executor[self] = self._pooled
        return self

    async def __aexit__(self, exc: Any, value: Any, tb: Any) -> None:
        pooled, self._pooled = self._pooled, None
        if pooled is not None:
            # Out of asgiref's map before its exit, which would shut the executor down and join it.
            SyncToAsync.context_to_thread_executor.pop(self, None)
        try:
            await super().__aexit__(exc, value, tb)
        finally:
            if pooled is not None:
                self._pool.give_back(pooled)


class PooledASGIHandler(ASGIHandler):
    """Django's ASGI handler (HTTP only, as Django's), each request's sync thread from the pool."""

    def __init__(self) -> None:
        super().__init__()
        self.request_threads = RequestThreadPool(settings.ASGI_REQUEST_THREADS)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        with loop_reads():  # this loop lives as long as the server: its reads may use a pool of its own
            async with PooledThreadSensitiveContext(self.request_threads):
                await self.handle(scope, receive, send)


def pooled_asgi_application() -> PooledASGIHandler:
    """``django.core.asgi.get_asgi_application`` with :class:`PooledASGIHandler`."""
    django.setup(set_prefix=False)
    return PooledASGIHandler()
