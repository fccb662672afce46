"""HTTP requests through the ASGI handler: a request's sync code runs on a thread kept for the next
request instead of one started and joined per request; past the pool, a thread of its own as before.
Django's connection receivers of the request signals run on that thread, and only for a request that
went there; the signals themselves are sent on the loop."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core import signals
from django.core.cache import close_caches
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.base import reset_urlconf
from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from apps.accounts.models import User
from apps.core import request_threads
from apps.core.request_threads import PooledASGIHandler
from apps.core.testing.asgi_request import asgi_get, asgi_request, thread_trips_counted

ran_on: list[str] = []
release = threading.Event()


def where_am_i(request: HttpRequest) -> JsonResponse:
    ran_on.append(threading.current_thread().name)
    return JsonResponse({"thread": threading.current_thread().name})


def held(request: HttpRequest) -> JsonResponse:
    ran_on.append(threading.current_thread().name)
    release.wait(10)
    return JsonResponse({})


def users_counted(request: HttpRequest) -> JsonResponse:
    ran_on.append(threading.current_thread().name)
    return JsonResponse({"users": User.objects.count()})


async def posted(request: HttpRequest) -> HttpResponse:
    return HttpResponse("taken")


urlpatterns = [
    path("where", where_am_i),
    path("held", held),
    path("users", users_counted),
    path("posted", posted),
    path("posted-exempt", csrf_exempt(posted)),
]


@pytest.fixture(autouse=True)
def _urls(settings):
    settings.ROOT_URLCONF = __name__
    ran_on.clear()
    release.clear()
    yield
    release.set()


async def test_one_request_after_another_runs_on_the_same_kept_thread(settings) -> None:
    settings.ASGI_REQUEST_THREADS = 4
    app = PooledASGIHandler()

    for _ in range(3):
        assert await asgi_get(app, "/where") == 200

    assert len(set(ran_on)) == 1
    assert ran_on[0].startswith("request")
    assert threading.current_thread().name not in ran_on


async def test_requests_side_by_side_each_have_a_thread_and_one_past_the_pool_gets_its_own(settings) -> None:
    # given a pool of one thread, and two requests whose views wait until both have started
    settings.ASGI_REQUEST_THREADS = 1
    app = PooledASGIHandler()
    first = asyncio.ensure_future(asgi_get(app, "/held"))
    second = asyncio.ensure_future(asgi_get(app, "/held"))
    for _ in range(500):
        if len(ran_on) == 2:
            break
        await asyncio.sleep(0.01)

    # then both views run at once, on two threads: the kept one and one of the second request's own
    assert len(ran_on) == 2
    release.set()
    assert await asyncio.gather(first, second) == [200, 200]
    assert sorted(name.startswith("request") for name in ran_on) == [False, True]

    # and the kept thread went back to the pool: the next request runs there
    ran_on.clear()
    assert await asgi_get(app, "/where") == 200
    assert ran_on[0].startswith("request")


async def test_with_no_kept_threads_every_request_has_a_thread_of_its_own(settings) -> None:
    settings.ASGI_REQUEST_THREADS = 0
    app = PooledASGIHandler()

    for _ in range(2):
        assert await asgi_get(app, "/where") == 200

    assert not any(name.startswith("request") for name in ran_on)


def _cleanups_recorded(monkeypatch) -> list[tuple[str, str]]:
    """From now on, (which, thread name) for each of Django's connection receivers the handler runs."""
    ran: list[tuple[str, str]] = []

    def recorded(which: str, real):
        def run() -> None:
            ran.append((which, threading.current_thread().name))
            real()

        return run

    monkeypatch.setattr(request_threads, "reset_queries", recorded("reset_queries", request_threads.reset_queries))
    monkeypatch.setattr(
        request_threads,
        "close_old_connections",
        recorded("close_old_connections", request_threads.close_old_connections),
    )
    return ran


async def test_a_request_served_on_the_loop_runs_no_connection_cleanup_and_goes_to_no_thread(
    settings, monkeypatch
) -> None:
    settings.ASGI_REQUEST_THREADS = 2
    app = PooledASGIHandler()
    ran = _cleanups_recorded(monkeypatch)
    trips = thread_trips_counted(monkeypatch)

    assert (await asgi_request(app, "POST", "/posted-exempt"))[0] == 200

    assert ran == []
    assert trips == []


@pytest.mark.django_db(transaction=True)
async def test_a_request_that_queries_in_its_thread_has_its_connection_cleaned_up_there_after_it_ends(
    settings, monkeypatch
) -> None:
    # given a pool of one thread, and a sync view that opens the thread's database connection
    settings.ASGI_REQUEST_THREADS = 1
    app = PooledASGIHandler()
    ran = _cleanups_recorded(monkeypatch)

    # when two requests run it, one after the other
    for _ in range(2):
        assert await asgi_get(app, "/users") == 200
    # (asked through the plain executor's submit: RequestThread.submit would run the start cleanup
    # first, which closes a connection left open, and hide one that the request's end did not close)
    thread = app.request_threads.take()
    probe = ThreadPoolExecutor.submit(thread, lambda: connections["default"].connection)
    connection_left = await asyncio.wrap_future(probe)
    app.request_threads.give_back(thread)

    # then each request's thread ran Django's receivers there: before the view, and after the request
    # (which returned the connection the view opened: none is left open in the idle thread)
    assert len(set(ran_on)) == 1
    request_thread = ran_on[0]
    assert ran[:3] == [
        ("reset_queries", request_thread),
        ("close_old_connections", request_thread),
        ("close_old_connections", request_thread),
    ]
    assert ran[3:6] == ran[:3]
    assert connection_left is None


async def test_the_request_signals_are_sent_on_the_loop_for_every_request(settings) -> None:
    # given receivers of both request signals
    app = PooledASGIHandler()
    heard: list[tuple[str, str]] = []

    def started(sender, **kwargs) -> None:
        heard.append(("started", threading.current_thread().name))

    def finished(sender, **kwargs) -> None:
        heard.append(("finished", threading.current_thread().name))

    signals.request_started.connect(started)
    signals.request_finished.connect(finished)
    try:
        # when a request served on the loop and one answered by a sync view pass
        assert (await asgi_request(app, "POST", "/posted-exempt"))[0] == 200
        assert await asgi_get(app, "/where") == 200
    finally:
        signals.request_started.disconnect(started)
        signals.request_finished.disconnect(finished)

    # then each request sent both: request_started as Django sends it (a sync receiver in the request's
    # thread), request_finished on the loop's thread
    loop_thread = threading.current_thread().name
    assert [which for which, _ in heard] == ["started", "finished", "started", "finished"]
    assert heard[1][1] == heard[3][1] == loop_thread


async def test_after_a_request_only_loop_safe_receivers_are_left_on_the_request_signals() -> None:
    # given a request through the handler (Django's test client puts its receiver back after its requests)
    app = PooledASGIHandler()
    assert await asgi_get(app, "/where") == 200

    # then request_finished, which the handler sends on the loop, reaches only Django's context-local
    # resets (a receiver added later must be looked at: it would run on the loop), and request_started none
    started_sync, started_async = signals.request_started._live_receivers(PooledASGIHandler)
    finished_sync, finished_async = signals.request_finished._live_receivers(PooledASGIHandler)
    assert (started_sync, started_async) == ([], [])
    assert set(finished_sync) == {close_caches, reset_urlconf}
    assert finished_async == []


async def test_csrf_still_refuses_an_unsafe_request_to_a_protected_view_and_checks_it_in_the_thread(
    settings, monkeypatch
) -> None:
    app = PooledASGIHandler()
    trips = thread_trips_counted(monkeypatch)

    refused = await asgi_request(app, "POST", "/posted")
    taken = await asgi_request(app, "POST", "/posted-exempt")

    assert refused[0] == 403
    assert (taken[0], taken[2]) == (200, b"taken")
    assert [trip for trip in trips if "process_view" in trip] == ["CsrfViewMiddleware.process_view"]


def test_handle_is_djangos_own() -> None:
    """PooledASGIHandler.handle is Django 5.2's ASGIHandler.handle with the response closed on the loop:
    when Django's changes (an upgrade), read the new one and carry its changes over, then update this."""
    source = inspect.getsource(ASGIHandler.handle)

    assert hashlib.sha256(source.encode()).hexdigest()[:16] == "98faeb5bef800331", source
