"""Django's ASGI handler with each request's sync thread taken from a pool, and no trip to a thread
for a request whose code never needs one.

Django runs each HTTP request inside asgiref's ``ThreadSensitiveContext``, so the request's sync code
(a sync view, sync signal receivers) runs on one thread of its own. asgiref starts that thread on the
request's first sync call (a new single-worker ``ThreadPoolExecutor``) and, when the request ends,
starts another thread to join it: two thread starts and a join per request, a fixed cost beside the
work of a small read (``bench/rest_per_process.py``).

``PooledASGIHandler`` gives the context a :class:`RequestThread` from a per-process pool, returned to
the pool when the request ends, so a request's sync code still runs on one thread, the same one from
its first sync call to its last, and no other request's code runs there meanwhile; the threads, like
a WSGI server's, serve one request after another. When all ``ASGI_REQUEST_THREADS`` are in use, a
request gets a thread of its own, started on its first sync call and ended after the request.

Django also sends ``request_started`` and ``request_finished`` through that thread, because its own
receivers of them (``reset_queries``, ``close_old_connections``) act on the calling thread's database
connections: three trips to the thread and back per request with CSRF's view check, each ~0.1-0.4 ms
of the process's CPU on this project's boxes, paid by a request served wholly on the loop
(``apps.core.loop_views``) for connections it never opened. Here the request's thread runs those
receivers itself, before the request's first sync call and after its last (only when it made one),
and the handler sends both signals on the loop to the other receivers (Django's ``close_caches`` and
``reset_urlconf``: context-local, no I/O). A request on the loop makes no trip to a thread.

The context is asgiref's own, without its ``executor=`` argument: a task that outlives its request
and calls sync code afterwards gets a new thread, as with Django's handler (asgiref refuses such a
call when an executor was given).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import django
from asgiref.sync import SyncToAsync, ThreadSensitiveContext
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.db import close_old_connections, reset_queries
from django.urls import set_script_prefix

from .loop_db import loop_reads
from .url_resolution import request_resolved

logger = logging.getLogger(__name__)

# Django's receivers of the request signals that act on the calling thread's database connections.
_THREAD_BOUND_RECEIVERS = (
    (signals.request_started, reset_queries),
    (signals.request_started, close_old_connections),
    (signals.request_finished, close_old_connections),
)


def _thread_bound_receivers_off() -> None:
    """Take Django's connection receivers off the request signals (the request's thread runs them).
    Django's test client connects ``close_old_connections`` again after each of its requests, so this
    runs before every request; when they are off already it changes nothing."""
    for signal, receiver in _THREAD_BOUND_RECEIVERS:
        signal.disconnect(receiver)


def _request_started_in_thread() -> None:
    reset_queries()
    close_old_connections()


def _logged_if_failed(future: Future[None]) -> None:
    if (error := future.exception()) is not None:
        logger.error("A request thread's connection cleanup failed", exc_info=error)


class RequestThread(ThreadPoolExecutor):
    """The one thread a request's sync code runs on, which runs Django's per-request connection
    hygiene as well: before the request's first call, and after the request, queued behind its last
    call (the loop does not wait for it; a later request's calls queue behind it)."""

    def __init__(self, *, pooled: bool) -> None:
        super().__init__(max_workers=1, thread_name_prefix="request" if pooled else "unpooled-request")
        self.pooled = pooled
        self._used = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        if not self._used:
            self._used = True
            super().submit(_request_started_in_thread).add_done_callback(_logged_if_failed)
        return super().submit(fn, *args, **kwargs)

    def request_ended(self) -> None:
        if self._used:
            self._used = False
            super().submit(close_old_connections).add_done_callback(_logged_if_failed)


class RequestThreadPool:
    """Request threads handed to one request at a time, most recently returned first (its thread and
    the database connection it may hold are the warmest); past ``size``, one made for the request."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._idle: collections.deque[RequestThread] = collections.deque()
        self._made = 0
        self._lock = threading.Lock()  # several loops (a test server thread beside the tests) may share it

    def take(self) -> RequestThread:
        with self._lock:
            if self._idle:
                return self._idle.pop()
            pooled = self._made < self.size
            if pooled:
                self._made += 1
        return RequestThread(pooled=pooled)

    def give_back(self, thread: RequestThread) -> None:
        if not thread.pooled:
            thread.shutdown(wait=False)  # its thread (if it started) ends after the work queued there
            return
        with self._lock:
            self._idle.append(thread)


class PooledThreadSensitiveContext(ThreadSensitiveContext):
    """asgiref's context for one request, its thread taken from ``pool``."""

    def __init__(self, pool: RequestThreadPool) -> None:
        super().__init__()
        self._pool = pool
        self._thread: RequestThread | None = None

    async def __aenter__(self) -> PooledThreadSensitiveContext:
        await super().__aenter__()
        if self.token is not None:  # this context is the request's (not nested in another one)
            self._thread = self._pool.take()
            SyncToAsync.context_to_thread_executor[self] = self._thread
        return self

    async def __aexit__(self, exc: Any, value: Any, tb: Any) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            # Out of asgiref's map before its exit, which would shut the executor down and join it.
            SyncToAsync.context_to_thread_executor.pop(self, None)
        try:
            await super().__aexit__(exc, value, tb)
        finally:
            if thread is not None:
                thread.request_ended()
                self._pool.give_back(thread)


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

    def resolve_request(self, request: Any) -> Any:
        """Django's, with the view of a recent path remembered (``apps.core.url_resolution``)."""
        return request_resolved(request)

    async def handle(self, scope: Any, receive: Any, send: Any) -> None:
        """Django 5.2's ``ASGIHandler.handle`` with the request signals sent on the loop: ``response.close()``
        (which sends ``request_finished``) is called here instead of in the request's thread
        (``test_handle_is_djangos_own`` fails when Django's changes)."""
        _thread_bound_receivers_off()
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        await signals.request_started.asend(sender=self.__class__, scope=scope)
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            assert error_response is not None  # create_request gives one or the other
            body_file.close()
            await self.send_response(error_response, send)
            error_response.close()
            return

        async def process_request(request: Any, send: Any) -> Any:
            response = await self.run_get_response(request)
            with contextlib.suppress(asyncio.CancelledError):  # the client disconnected during the send
                await self.send_response(response, send)
            return response

        # The disconnect listener first: it raises nothing unexpected that would keep the request's
        # task from being cancelled.
        tasks = [
            asyncio.create_task(self.listen_for_disconnect(receive)),
            asyncio.create_task(process_request(request, send)),
        ]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                try:
                    task.result()
                except RequestAborted:
                    pass  # the client disconnected
                except AssertionError:
                    body_file.close()
                    raise
            else:
                task.cancel()  # views may handle their cancellation
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        try:
            response = tasks[1].result()
        except asyncio.CancelledError:
            signals.request_finished.send(sender=self.__class__)
        else:
            response.close()
        body_file.close()


def pooled_asgi_application() -> PooledASGIHandler:
    """``django.core.asgi.get_asgi_application`` with :class:`PooledASGIHandler`."""
    django.setup(set_prefix=False)
    return PooledASGIHandler()
