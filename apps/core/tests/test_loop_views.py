"""Async API views answered on the server's loop (apps.core.loop_views, apps.core.loop_db): the same
answers as the sync views, the session query and the throttle awaited there instead of in a thread."""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json

import pytest
from asgiref.sync import sync_to_async
from django.core.cache import BaseCache
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from rest_framework.test import APIClient

from apps.accounts.tokens import tokens_issue, tokens_revoke
from apps.billing import tiers
from apps.billing.throttles import WINDOW_SECONDS
from apps.core import loop_db
from apps.core.testing.asgi_request import asgi_get_response, thread_trips_counted

pytestmark = pytest.mark.django_db(transaction=True)

ME = "/api/v1/auth/me"


@pytest.fixture
def app(loop_asgi_app):
    return loop_asgi_app


def _without_request_id(error: dict) -> dict:
    return {name: value for name, value in error.items() if name != "request_id"}


def _bearer(tokens) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens.access_token}"}


async def test_auth_me_is_answered_on_the_loop_without_a_trip_to_the_thread_for_its_reads(
    app, user, tokens, monkeypatch
):
    # given a warm server (the chain loaded, the session query compiled, the loop's pool open)
    assert (await asgi_get_response(app, ME, headers=_bearer(tokens)))[0] == 200
    trips = thread_trips_counted(monkeypatch)

    # when the client asks who it is
    status, _headers, body = await asgi_get_response(app, ME, headers=_bearer(tokens))

    # then the answer is the usual one, and nothing went to the thread (the sync view went there, and
    # waited there for the session and the throttle; Django's request signals and CSRF's view check did
    # until the fifteenth stop)
    assert status == 200
    assert json.loads(body) == {
        "id": str(user.id),
        "email": user.email,
        "tier": user.tier,
        "email_verified": False,
        "time_zone": user.time_zone,
    }
    assert trips == []
    pool = await loop_db.loop_pool()
    assert pool.get_stats()["requests_num"] == 2  # both session queries were the loop pool's


@pytest.mark.parametrize(
    "cls",
    [
        # the session query's value conversion, converters and error mapping (apps.core.loop_db.loop_wrapper)
        BaseDatabaseWrapper,
        # the throttle's key (apps.core.redis_pool.cache_backend)
        BaseCache,
    ],
)
async def test_a_request_on_the_loop_makes_no_database_wrapper_or_cache_backend_of_its_own(
    app, user, tokens, monkeypatch, cls
):
    # given a warm server, and every object of the class made from now on counted
    assert (await asgi_get_response(app, ME, headers=_bearer(tokens)))[0] == 200
    made: list[str] = []
    real_init = cls.__init__

    def counted_init(self, *args, **kwargs):
        made.append(type(self).__name__)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(cls, "__init__", counted_init)

    # when the client asks who it is several times, each request in a new context, as a server runs it
    async def asked() -> int:
        request = asgi_get_response(app, ME, headers=_bearer(tokens))
        return (await asyncio.create_task(request, context=contextvars.Context()))[0]

    statuses = [await asked() for _ in range(5)]

    # then every answer is the usual one, and none made one: the request uses the process's
    # (``connections[...]`` and ``caches[...]`` on the loop are the request context's own, new each time)
    assert statuses == [200] * 5
    assert made == []


async def test_a_revoked_session_is_refused_on_the_loop_as_in_the_thread(app, user, tokens):
    await sync_to_async(tokens_revoke)(user=user, refresh_token=tokens.refresh_token)

    status, _headers, body = await asgi_get_response(app, ME, headers=_bearer(tokens))

    assert status == 401
    assert json.loads(body)["code"] == "authentication_failed"  # as the sync view answered


async def test_an_invalid_token_and_no_token_are_refused_on_the_loop(app):
    bad = await asgi_get_response(app, ME, headers={"Authorization": "Bearer not-a-token"})
    missing = await asgi_get_response(app, ME)

    assert bad[0] == 401
    assert missing[0] == 401
    assert "www-authenticate" in missing[1]


async def test_the_tier_budget_is_counted_on_the_loop_and_a_request_over_it_is_a_429(app, user, tokens, settings):
    # given the tier's own budget per minute (the test settings scale it up)
    settings.BILLING_RATE_LIMIT_SCALE = 1
    limit = await sync_to_async(tiers.requests_per_minute)(user)

    # when the client asks once more than its budget within the minute
    answers = [await asgi_get_response(app, ME, headers=_bearer(tokens)) for _ in range(limit + 1)]

    # then every request of the budget is answered and the one past it refused with its wait (a window
    # may end during the run: then every request is answered)
    statuses = [status for status, _headers, _body in answers]
    if statuses[-1] == 200:
        pytest.skip("the minute's window ended during the run")
    assert statuses == [200] * limit + [429]
    _status, headers, body = answers[-1]
    assert json.loads(body)["code"] == "rate_limited"
    assert 0 < int(headers["retry-after"]) <= WINDOW_SECONDS


async def test_the_database_unreachable_from_the_loop_is_a_503_not_a_500(app, user, tokens, monkeypatch):
    # given the loop's pool pointed at a port where no database listens (its timeout short)
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    settings_dict = connections["default"].settings_dict
    monkeypatch.setitem(settings_dict, "HOST", "127.0.0.1")
    monkeypatch.setitem(settings_dict, "PORT", str(dead_port))
    monkeypatch.setitem(settings_dict["OPTIONS"]["pool"], "timeout", 1.0)

    status, headers, body = await asgi_get_response(app, ME, headers=_bearer(tokens))

    assert status == 503
    assert json.loads(body)["code"] == "database_unavailable"
    assert headers["retry-after"]


async def test_with_loop_reads_off_the_session_query_runs_in_the_thread(app, user, tokens, settings):
    settings.DATABASE_LOOP_READS = False

    status, _headers, body = await asgi_get_response(app, ME, headers=_bearer(tokens))

    assert status == 200
    assert json.loads(body)["email"] == user.email
    assert loop_db._pools.get(__import__("asyncio").get_running_loop()) is None


def _data_of(user, tables: list[str]) -> dict[str, str]:
    """Records in ``tables`` and two core memories for ``user``; the ids of the first of each."""
    from apps.memory.models import CoreMemory
    from apps.memory.services import core_memory_set
    from apps.storage.records import record_create

    records = []
    for index, table in enumerate(tables):
        blob = f"ciphertext-{index}".encode()
        records.append(record_create(user=user, table=table, blob=blob, checksum=hashlib.sha256(blob).hexdigest()))
    core_memory_set(user_id=user.id, key="tone", value="dry")
    core_memory_set(user_id=user.id, key="time zone", value="Europe/Berlin")
    memory = CoreMemory.objects.filter(user=user).order_by("created_at")[0]
    return {"record": str(records[0].id), "memory": str(memory.id)}


# Each route, and the reads it makes on the loop's pool: the session query, then its own (a page, a
# row, the counts); a page number refused before any read makes only the first.
HOT_READS = [
    ("/api/v1/storage/records?table=notes&limit=2&page=2", 2),
    ("/api/v1/storage/records?limit=50", 2),
    ("/api/v1/storage/records?table=notes&page=5", 2),  # past the end: an empty page, counted in the thread
    ("/api/v1/storage/records?page=0", 1),
    ("/api/v1/storage/records/{record}", 2),
    ("/api/v1/storage/records/{other_record}", 2),  # another user's: 404
    ("/api/v1/memory", 2),
    ("/api/v1/memory/core", 2),
    ("/api/v1/memory/core?limit=1&page=2", 2),
    ("/api/v1/memory/core?page=3", 2),  # past the end: 404
    ("/api/v1/memory/core/{memory}", 2),
    ("/api/v1/memory/core/{other_memory}", 2),  # another user's: 404
]


@pytest.mark.parametrize(("route", "loop_reads"), HOT_READS)
async def test_a_hot_read_on_the_loop_answers_what_the_thread_answers(app, make_user, route, loop_reads, blob_dir):
    # given a user with records in two tables and core memories, and another user's
    owner = await sync_to_async(make_user)("pro@example.com", tier="pro")
    mine = await sync_to_async(_data_of)(owner, ["notes", "notes", "notes", "tasks"])
    theirs = await sync_to_async(_data_of)(await sync_to_async(make_user)("mallory@example.com", tier="pro"), ["notes"])
    route = route.format(**mine, other_record=theirs["record"], other_memory=theirs["memory"])
    access = (await sync_to_async(tokens_issue)(user=owner)).access_token

    # when it is asked on the server's loop, and through the test client (its reads in the thread)
    status, headers, body = await asgi_get_response(app, route, headers={"Authorization": f"Bearer {access}"})
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    expected = await sync_to_async(client.get)(route, HTTP_HOST="localhost")  # the host asgi_get_response sends

    # then both say the same: status, body and headers (pagination, checksum)
    assert status == expected.status_code
    if status == 200:
        assert body == expected.content
    else:  # an error: the same body but for its request's own id
        assert _without_request_id(json.loads(body)) == _without_request_id(expected.json())
    for name in ("content-type", "x-total-count", "x-page", "x-per-page", "link", "x-checksum"):
        assert headers.get(name) == expected.headers.get(name), name
    # and every read of the loop's request was the loop pool's (none went to the thread)
    assert (await loop_db.loop_pool()).get_stats().get("requests_num", 0) == loop_reads


async def test_a_redis_outage_on_the_loop_fails_open(app, user, tokens, monkeypatch):
    import redis

    from apps.billing import throttles

    hits = []

    def unreachable(source):
        async def refused(**kwargs):
            hits.append(kwargs["keys"])
            raise redis.exceptions.ConnectionError("Redis is down")

        return refused

    monkeypatch.setattr(throttles, "loop_script", unreachable)

    status, _headers, body = await asgi_get_response(app, ME, headers=_bearer(tokens))

    # then the hit was tried on the loop's client, and the request answered all the same
    assert len(hits) == 1
    assert status == 200  # the budget is abuse protection, not a boundary
    assert json.loads(body)["email"] == user.email
