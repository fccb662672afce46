"""The REST hot path under the real ASGI server: one Redis pool per process for the cache (and so
the per-tier throttle), and a middleware chain that never leaves the event loop."""

from __future__ import annotations

import http.cookiejar
import json
import urllib.error
import urllib.parse
import urllib.request

import pytest
import redis.asyncio.connection
import redis.connection
from django.conf import settings
from django.test import RequestFactory
from django.urls import path
from django.utils.module_loading import import_string

from apps.core.request_threads import PooledASGIHandler
from apps.core.static_files import AsyncStaticFilesMiddleware
from apps.core.testing.asgi_request import asgi_get, thread_trips_counted
from conftest import DEFAULT_PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


def _get(url: str, token: str) -> dict:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _redis_connections_made(monkeypatch) -> list[object]:
    """Every Redis connection this process opens from now on (sync and asyncio clients): the live
    server runs in a thread of this process. Counted here, not from Redis's ``total_connections_received``,
    which another test worker's connections to the same Redis server also raise."""
    made: list[object] = []
    sync_on_connect = redis.connection.AbstractConnection.on_connect
    async_on_connect = redis.asyncio.connection.AbstractConnection.on_connect

    def on_connect(self, *args, **kwargs):
        made.append(self)
        return sync_on_connect(self, *args, **kwargs)

    async def aon_connect(self, *args, **kwargs):
        made.append(self)
        return await async_on_connect(self, *args, **kwargs)

    monkeypatch.setattr(redis.connection.AbstractConnection, "on_connect", on_connect)
    monkeypatch.setattr(redis.asyncio.connection.AbstractConnection, "on_connect", aon_connect)
    return made


def test_throttled_requests_share_one_redis_pool_instead_of_connecting_each_time(
    live_asgi_server, user, tokens, monkeypatch
):
    # given a warm server (its first request opens the pool)
    url = live_asgi_server.http_url + "/api/v1/auth/me"
    _get(url, tokens.access_token)
    made = _redis_connections_made(monkeypatch)

    # when 20 authenticated requests pass the per-tier throttle one after the other
    for _ in range(20):
        assert _get(url, tokens.access_token)["email"] == user.email

    # then they reuse pooled connections (one per request before, since each request context had its own pool)
    assert len(made) <= 2


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


async def _async_view(request):
    from django.http import JsonResponse

    return JsonResponse({"ok": True})


def _message_added(request):
    from django.contrib import messages
    from django.http import HttpResponse

    messages.info(request, request.GET["text"])
    return HttpResponse("added")


def _messages_read(request):
    from django.contrib import messages
    from django.http import HttpResponse

    return HttpResponse(",".join(message.message for message in messages.get_messages(request)))


urlpatterns = [
    path("async-view", _async_view),
    path("messages/add", _message_added),
    path("messages/read", _messages_read),
]


async def test_a_request_to_an_async_view_never_goes_to_a_thread(settings, monkeypatch):
    # given the project's middleware chain in front of an async view
    settings.ROOT_URLCONF = __name__
    app = PooledASGIHandler()
    await asgi_get(app, "/async-view")  # warm: the chain is loaded
    trips = thread_trips_counted(monkeypatch)

    # when one request passes
    assert await asgi_get(app, "/async-view") == 200

    # then nothing went to the request's thread: not a middleware hook, not CSRF's view check, not the
    # request signals (Django's chain made 15 trips; before this, the last three were those)
    assert trips == []


def _opener() -> tuple[urllib.request.OpenerDirector, http.cookiejar.CookieJar]:
    jar = http.cookiejar.CookieJar()

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect()), jar


def _status(opener, url: str, data: dict | None = None) -> tuple[int, str]:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    try:
        with opener.open(urllib.request.Request(url, data=body), timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_the_admin_login_over_asgi_sets_the_csrf_cookie_saves_the_session_and_refuses_a_missing_token(
    live_asgi_server, make_user
):
    staff = make_user("staff@example.com", is_staff=True, is_superuser=True)
    opener, jar = _opener()
    login = live_asgi_server.http_url + "/admin/login/?next=/admin/"

    # when the login page is opened, the CSRF cookie is set (on the loop, by the response hook)
    assert _status(opener, login)[0] == 200
    csrf = {cookie.name: cookie.value for cookie in jar}["csrftoken"]

    # then a post without the token is refused, and with it the staff member is signed in (the session
    # row saved in the request's thread) and the admin opens with that session
    assert _status(opener, login, {"username": staff.email, "password": DEFAULT_PASSWORD})[0] == 403
    form = {"username": staff.email, "password": DEFAULT_PASSWORD, "csrfmiddlewaretoken": csrf}
    assert _status(opener, login, form)[0] == 302
    assert "sessionid" in {cookie.name for cookie in jar}
    status, page = _status(opener, live_asgi_server.http_url + "/admin/")
    assert status == 200
    assert staff.email in page


def test_messages_kept_in_the_session_are_stored_over_asgi_on_a_session_that_already_exists(live_asgi_server, settings):
    # given messages kept in the session, behind the live ASGI server
    settings.ROOT_URLCONF = __name__
    settings.MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
    opener, jar = _opener()
    base = live_asgi_server.http_url

    # when a first request makes the session with a message, and a second adds one to that session
    # (storing it loads the session row: on the loop it would raise SynchronousOnlyOperation, a 500)
    assert _status(opener, base + "/messages/add?text=first") == (200, "added")
    assert "sessionid" in {cookie.name for cookie in jar}
    assert _status(opener, base + "/messages/add?text=second") == (200, "added")

    # then both are read back, once
    assert _status(opener, base + "/messages/read") == (200, "first,second")
    assert _status(opener, base + "/messages/read") == (200, "")


def test_the_admin_login_over_asgi_with_the_csrf_secret_in_the_session(live_asgi_server, make_user, settings):
    import re

    # given CSRF_USE_SESSIONS: the secret lives in the session row, so the CSRF hooks go to the thread
    settings.CSRF_USE_SESSIONS = True
    staff = make_user("staff@example.com", is_staff=True, is_superuser=True)
    opener, jar = _opener()
    login = live_asgi_server.http_url + "/admin/login/?next=/admin/"

    # when the login page is opened, then its token comes in the form and no CSRF cookie is set
    status, page = _status(opener, login)
    assert status == 200
    assert "csrftoken" not in {cookie.name for cookie in jar}
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)

    # then a post without the token is refused, and with it the staff member is signed in
    assert _status(opener, login, {"username": staff.email, "password": DEFAULT_PASSWORD})[0] == 403
    form = {"username": staff.email, "password": DEFAULT_PASSWORD, "csrfmiddlewaretoken": token}
    assert _status(opener, login, form)[0] == 302
    status, page = _status(opener, live_asgi_server.http_url + "/admin/")
    assert status == 200
    assert staff.email in page


def test_the_deploy_check_asks_for_the_security_csrf_and_frame_middleware_by_class(settings):
    from apps.core.django_middleware import protections_in_chain_check

    # the project's chain (subclasses of Django's three) passes
    assert protections_in_chain_check() == []

    # a chain without them is warned about, one warning for each
    settings.MIDDLEWARE = [path for path in settings.MIDDLEWARE if "Security" not in path and "Csrf" not in path]
    assert sorted(warning.id for warning in protections_in_chain_check()) == ["core.W001", "core.W003"]
