"""The REST hot path under the real ASGI server: one Redis pool per process for the cache (and so
the per-tier throttle), and a middleware chain that never leaves the event loop."""

from __future__ import annotations

import json
import urllib.request

import pytest
from django.conf import settings
from django.core.cache import caches
from django.test import RequestFactory
from django.utils.module_loading import import_string

from apps.core.static_files import AsyncStaticFilesMiddleware

pytestmark = pytest.mark.django_db(transaction=True)


def _get(url: str, token: str) -> dict:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _connections_received() -> int:
    client = caches["default"]._cache.get_client(write=True)  # type: ignore[attr-defined]
    return int(client.info("stats")["total_connections_received"])


def test_throttled_requests_share_one_redis_pool_instead_of_connecting_each_time(live_asgi_server, user, tokens):
    # given a warm server (its first request opens the pool)
    url = live_asgi_server.http_url + "/api/v1/auth/me"
    _get(url, tokens.access_token)
    before = _connections_received()

    # when 20 authenticated requests pass the per-tier throttle one after the other
    for _ in range(20):
        assert _get(url, tokens.access_token)["email"] == user.email

    # then they reuse pooled connections (one per request before, since each request context had its own pool)
    assert _connections_received() - before <= 2


def test_every_middleware_is_async_capable_so_requests_stay_on_the_event_loop():
    sync_only = [path for path in settings.MIDDLEWARE if not getattr(import_string(path), "async_capable", False)]

    assert sync_only == []


async def _not_found(request):
    from django.http import HttpResponse

    return HttpResponse(status=404)


async def test_static_files_are_served_from_the_async_chain_and_other_paths_go_on():
    middleware = AsyncStaticFilesMiddleware(_not_found)

    served = await middleware(RequestFactory().get("/static/admin/css/base.css"))
    passed_on = await middleware(RequestFactory().get("/api/v1/auth/me"))

    assert served.status_code == 200
    assert served.is_async
    assert b"".join([chunk async for chunk in served])
    assert passed_on.status_code == 404
