"""The reads and throttle hits asked in one turn of the server's loop go out as one batch
(apps.core.loop_batches): one round trip, each caller with its own answer or its own error."""

from __future__ import annotations

import asyncio
import datetime
import gc
import uuid
import weakref
from types import SimpleNamespace

import pytest
from asgiref.sync import sync_to_async
from django.db import DataError, connection

from apps.billing import throttles
from apps.billing.throttles import TierRateThrottle
from apps.core import loop_batches, loop_db
from apps.core.redis_pool import cache_backend, cache_redis

pytestmark = pytest.mark.django_db(transaction=True)


async def test_reads_asked_in_one_turn_go_to_postgres_in_one_round_trip_each_with_its_own_rows(
    on_the_loop, statements_sent
):
    # given a warm pool
    await loop_db.loop_fetchall("SELECT 1", None)
    statements_sent.clear()
    served_before = (await loop_db.loop_pool()).get_stats().get("requests_num", 0)

    # when three requests ask a read in the same turn
    answers = await asyncio.gather(
        loop_db.loop_fetchall("SELECT %s::int, 'a'", [1]),
        loop_db.loop_fetchall("SELECT generate_series(1, %s)", [3]),
        loop_db.loop_fetchall("SELECT 1 WHERE false", None),
    )

    # then each has its own rows, and all three went out on one connection in one message
    assert answers == [[(1, "a")], [(1,), (2,), (3,)], []]
    assert len(statements_sent) == 1
    assert (await loop_db.loop_pool()).get_stats()["requests_num"] == served_before + 1


async def test_a_batch_holds_at_most_database_loop_batch_max_reads(on_the_loop, statements_sent, settings):
    # given batches of at most two (1: every read alone, on a connection of its own)
    settings.DATABASE_LOOP_BATCH_MAX = 2
    await loop_db.loop_fetchall("SELECT 1", None)
    statements_sent.clear()

    # when five requests read in the same turn
    answers = await asyncio.gather(*(loop_db.loop_fetchall("SELECT %s::int", [n]) for n in range(5)))

    # then they went out in three messages, each read still answered with its own rows
    assert answers == [[(n,)] for n in range(5)]
    assert len(statements_sent) == 3


async def test_a_read_that_fails_in_a_batch_fails_alone(on_the_loop):
    # when one of three reads of a turn is refused by the database
    answers = await asyncio.gather(
        loop_db.loop_fetchall("SELECT 1", None),
        loop_db.loop_fetchall("SELECT 1 / %s", [0]),
        loop_db.loop_fetchall("SELECT %s::int", [3]),
        return_exceptions=True,
    )

    # then only its caller gets the error (Django's, as on the thread), the others their rows:
    # the statement after it, which the database skipped in the batch, was asked again alone
    first, failed, third = answers
    assert first == [(1,)]
    assert isinstance(failed, DataError)
    assert third == [(3,)]


async def test_values_are_bound_in_a_batch_as_they_are_alone(on_the_loop):
    values = [
        "it's 100% \\ 'quoted'; SELECT 1 --",
        uuid.UUID("12345678-1234-5678-1234-567812345678"),
        None,
        datetime.datetime(2026, 12, 7, 4, 5, 6, 789000, tzinfo=datetime.UTC),
        "naïve — ünïcode ✓",
        b"\x00\x01bytes",
    ]
    sql = "SELECT %s, pg_typeof(%s)::text"

    alone = [await loop_db.loop_fetchall(sql, [value, value]) for value in values]
    batched = await asyncio.gather(*(loop_db.loop_fetchall(sql, [value, value]) for value in values))

    assert batched == alone
    assert [rows[0][0] for rows in batched] == values


async def test_throttle_hits_of_one_turn_are_one_script_call_each_counted_in_order(
    on_the_loop, user, monkeypatch, settings
):
    # given a budget of two requests a minute, and the script calls watched
    monkeypatch.setattr(throttles, "_limit", lambda user: 2)
    calls = []
    real_loop_script = throttles.loop_script

    def watched(source):
        script = real_loop_script(source)

        async def call(**kwargs):
            calls.append(kwargs["keys"])
            return await script(**kwargs)

        return call

    monkeypatch.setattr(throttles, "loop_script", watched)
    request = SimpleNamespace(user=user)
    throttle_list = [TierRateThrottle() for _ in range(3)]

    # when three of the user's requests are checked in the same turn
    allowed = await asyncio.gather(*(throttle.aallow_request(request, None) for throttle in throttle_list))

    # then one script call counted all three, and the budget let exactly two through
    assert len(calls) == 1
    assert len(calls[0]) == 3
    assert sorted(allowed) == [False, True, True]
    refused = throttle_list[allowed.index(False)]
    wait = refused.wait()
    assert wait is not None
    assert 0 < wait <= throttles.WINDOW_SECONDS


async def test_throttle_hits_of_one_turn_go_in_script_calls_of_at_most_billing_throttle_batch_max_keys(
    on_the_loop, user, monkeypatch, settings
):
    # given the calls watched, and script calls of at most two keys set after the loop's throttle
    # already counted a hit (a loader made with the default cap)
    calls = []
    real_loop_script = throttles.loop_script

    def watched(source):
        script = real_loop_script(source)

        async def call(**kwargs):
            calls.append(len(kwargs["keys"]))
            return await script(**kwargs)

        return call

    monkeypatch.setattr(throttles, "loop_script", watched)
    request = SimpleNamespace(user=user)
    now = 1_796_638_000.0  # the throttle's clock, held still: its minute's key is known
    monkeypatch.setattr(throttles, "time", SimpleNamespace(time=lambda: now))
    assert await TierRateThrottle().aallow_request(request, None)
    settings.BILLING_THROTTLE_BATCH_MAX = 2
    calls.clear()

    # when five of the user's requests are checked in the same turn
    allowed = await asyncio.gather(*(TierRateThrottle().aallow_request(request, None) for _ in range(5)))

    # then their hits went out in three calls of at most two keys, and every one was counted
    assert allowed == [True] * 5
    assert calls == [2, 2, 1]
    key = cache_backend().make_and_validate_key(throttles._window_key(user.pk, int(now // throttles.WINDOW_SECONDS)))
    assert int(cache_redis().get(key)) == 6


def test_a_loop_that_ends_leaves_no_loader_behind():
    # given a loop that made a loader, then ended
    async def made():
        loop_batches.loop_loader("forgotten", _echo)
        return weakref.ref(asyncio.get_running_loop())

    loop = asyncio.new_event_loop()
    ended = loop.run_until_complete(made())
    loop.close()
    del loop
    gc.collect()

    # then the loop is gone, and its loaders with it (a loader holding its loop kept both forever)
    assert ended() is None


async def _echo(keys: list) -> list:
    return keys


async def test_a_connection_lost_under_a_batch_costs_no_read_an_error(on_the_loop, settings):
    # given the loop's pool with its one connection, whose server process is then ended (as by a
    # PostgreSQL restart)
    settings.DATABASE_LOOP_POOL_MAX_SIZE = 1
    ((backend_pid,),) = await loop_db.loop_fetchall("SELECT pg_backend_pid()", None)
    assert (await loop_db.loop_pool()).get_stats()["pool_size"] == 1

    def terminate() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [backend_pid])

    await sync_to_async(terminate)()

    # when three requests read in the same turn, and one more after them
    answers = await asyncio.gather(*(loop_db.loop_fetchall("SELECT %s::int", [n]) for n in range(3)))
    after = await loop_db.loop_fetchall("SELECT %s::int, pg_backend_pid()", [7])

    # then each got its own rows (the batch was asked again on a new connection: reads are safe to
    # repeat), where each used to answer 503 database_unavailable
    assert answers == [[(0,)], [(1,)], [(2,)]]
    assert after[0][0] == 7
    assert after[0][1] != backend_pid
