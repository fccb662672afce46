"""HTTP requests through the ASGI handler: a request's sync code runs on a thread kept for the next
request instead of one started and joined per request; past the pool, a thread of its own as before."""

from __future__ import annotations

import asyncio
import threading

import pytest
from django.http import HttpRequest, JsonResponse
from django.urls import path

from apps.core.request_threads import PooledASGIHandler
from apps.core.testing.asgi_request import asgi_get

ran_on: list[str] = []
release = threading.Event()


def where_am_i(request: HttpRequest) -> JsonResponse:
    ran_on.append(threading.current_thread().name)
    return JsonResponse({"thread": threading.current_thread().name})


def held(request: HttpRequest) -> JsonResponse:
    ran_on.append(threading.current_thread().name)
    release.wait(10)
    return JsonResponse({})


urlpatterns = [path("where", where_am_i), path("held", held)]


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
