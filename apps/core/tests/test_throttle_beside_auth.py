"""A view whose throttle hit travels beside its session query answers what DRF's throttling answers:
every request counted once, 429 with Retry-After past the budget (before a 404 too), a refused request's
view never run, other methods refused before they run, Redis connections back in their pool, and a
Redis outage still fails open."""

from __future__ import annotations

import pytest
from django.test import override_settings

from apps.billing import throttles
from apps.core.redis_pool import cache_redis
from apps.memory.models import CoreMemory
from apps.memory.services import core_memory_set

pytestmark = pytest.mark.django_db

LIST = "/api/v1/memory/core"  # MemoryKindApi: ThrottleBesideAuthMixin
FREE_BUDGET = 20


def _window_count(user) -> int:
    client = cache_redis()
    return sum(int(client.get(key) or 0) for key in client.keys(f"*throttle:tier:{user.pk}:*"))


def _connections_in_use() -> int:
    return len(cache_redis().connection_pool._in_use_connections)


@override_settings(BILLING_RATE_LIMIT_SCALE=1)
def test_a_free_user_gets_20_pages_a_minute_then_429_with_retry_after(user, auth_client):
    core_memory_set(user_id=user.id, key="timezone", value="UTC")
    # when the free budget is spent on the list, and one more page is asked for
    statuses = [auth_client.get(LIST).status_code for _ in range(FREE_BUDGET)]
    refused = auth_client.get(LIST)

    # then every page was answered, the next one is refused as DRF refuses it, and each was counted once
    assert statuses == [200] * FREE_BUDGET
    assert refused.status_code == 429
    assert refused.json()["code"] == "rate_limited"
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert "results" not in refused.json()
    assert _window_count(user) == FREE_BUDGET + 1
    assert _connections_in_use() == 0


@override_settings(BILLING_RATE_LIMIT_SCALE=1)
def test_past_the_budget_a_refused_page_never_runs_its_view(user, auth_client, monkeypatch):
    from apps.memory import apis

    core_memory_set(user_id=user.id, key="timezone", value="UTC")
    reads = []
    real_page, real_count = apis.memory_page, apis.memory_kind_count
    monkeypatch.setattr(apis, "memory_page", lambda **kw: reads.append("page") or real_page(**kw))
    monkeypatch.setattr(apis, "memory_kind_count", lambda **kw: reads.append("count") or real_count(**kw))
    # given a spent budget
    for _ in range(FREE_BUDGET):
        assert auth_client.get(LIST).status_code == 200
    reads.clear()

    # when more pages are asked for (a flood of reads)
    statuses = [auth_client.get(LIST).status_code for _ in range(3)]

    # then each is refused before its view runs: no page query, no count, no decryption
    assert statuses == [429] * 3
    assert reads == []
    assert _window_count(user) == FREE_BUDGET + 3
    assert _connections_in_use() == 0


def test_a_revoked_session_is_a_401_and_its_sent_hit_counted_for_the_token_s_user(user, auth_client):
    from apps.accounts.tokens import sessions_revoke_for_users

    # given a valid access token whose session was revoked
    sessions_revoke_for_users(user_ids=[user.id], reason="staff", actor=None)

    # when a page is asked for with it
    refused = auth_client.get(LIST)

    # then it is refused as before; its hit was sent before the session was known (documented:
    # only the holder of that user's signed token can spend their budget so), its connection given back
    assert refused.status_code == 401
    assert refused.json()["code"] == "authentication_failed"
    assert _window_count(user) == 1
    assert _connections_in_use() == 0


def test_an_invalid_token_or_none_is_refused_without_a_hit(user, auth_client):
    from rest_framework.test import APIClient

    # when pages are asked for with a forged token and with none
    forged = APIClient()
    forged.credentials(HTTP_AUTHORIZATION="Bearer not.a.token")

    # then both are refused as DRF refuses them, and nothing is counted
    assert forged.get(LIST).status_code == 401
    assert APIClient().get(LIST).status_code == 401
    assert _window_count(user) == 0
    assert _connections_in_use() == 0


def test_a_hit_sent_for_another_user_than_the_session_s_is_abandoned_and_the_user_counted_as_drf_counts(
    user, auth_client, make_user, monkeypatch
):
    from apps.accounts.authentication import AccessTokenAuthentication

    # given a token whose claim would name another user than its session answers (never seen; checked anyway)
    other = make_user()
    monkeypatch.setattr(AccessTokenAuthentication, "claimed_user_id", lambda self, request: str(other.pk))

    # when a page is asked for, then it is answered, counted once for the session's user as allow_request
    # counts it, and the connection of the hit sent for the other given back (closed)
    assert auth_client.get(LIST).status_code == 200
    assert _window_count(user) == 1
    assert _connections_in_use() == 0


@override_settings(BILLING_RATE_LIMIT_SCALE=1)
def test_past_the_budget_a_page_that_would_be_404_is_a_429(user, auth_client):
    # given a list of one page, and a budget spent on pages past its end (each a 404, each counted)
    core_memory_set(user_id=user.id, key="timezone", value="UTC")
    assert [auth_client.get(f"{LIST}?page=5").status_code for _ in range(FREE_BUDGET)] == [404] * FREE_BUDGET

    # when one more is asked for, then the throttle answers first, as when DRF refused it before the view
    refused = auth_client.get(f"{LIST}?page=5")
    assert refused.status_code == 429
    assert refused.json()["code"] == "rate_limited"
    assert _window_count(user) == FREE_BUDGET + 1
    assert _connections_in_use() == 0


@override_settings(BILLING_RATE_LIMIT_SCALE=1)
def test_past_the_budget_a_post_on_the_same_view_is_refused_before_it_runs(user, auth_client):
    # given a spent budget
    for _ in range(FREE_BUDGET):
        assert auth_client.get(LIST).status_code == 200

    # when the user sets a preference by hand on the same view
    refused = auth_client.post(LIST, {"key": "tone", "value": "dry"}, format="json")

    # then it is refused and nothing was stored (the write never ran)
    assert refused.status_code == 429
    assert not CoreMemory.objects.filter(user=user).exists()


def test_a_forgotten_script_still_counts_the_hit(user, auth_client):
    # given a Redis that forgot the throttle's script (a restart, SCRIPT FLUSH)
    assert auth_client.get(LIST).status_code == 200
    cache_redis().script_flush()

    # when pages are asked for again, then they are answered and counted, the counter still expiring
    assert [auth_client.get(LIST).status_code for _ in range(2)] == [200, 200]
    assert _window_count(user) == 3
    (key,) = cache_redis().keys(f"*throttle:tier:{user.pk}:*")
    assert 0 < cache_redis().ttl(key) <= 61
    assert _connections_in_use() == 0


def test_a_redis_outage_when_the_hit_is_sent_fails_open(user, auth_client, monkeypatch):
    import redis

    def unreachable(self, *args, **kwargs):
        raise redis.exceptions.ConnectionError("Redis is down")

    # given a Redis that refuses every connection (the count and the fallback both)
    monkeypatch.setattr(throttles._SentHit, "__init__", unreachable)
    monkeypatch.setattr(throttles, "_count_hit", lambda key: unreachable(None))

    # when a page is asked for, then it is answered (the budget is abuse protection, not a boundary)
    assert auth_client.get(LIST).status_code == 200


def test_a_redis_outage_while_the_reply_is_read_fails_open_and_frees_the_connection(user, auth_client, monkeypatch):
    import redis

    real_send = throttles._SentHit.__init__
    broken_connections = []

    def sent_then_broken(self, script, full_key):
        real_send(self, script, full_key)

        def broken(*args, **kwargs):
            raise redis.exceptions.ConnectionError("connection lost")

        monkeypatch.setattr(self._connection, "read_response", broken)  # undone after the test
        broken_connections.append(self._connection)

    monkeypatch.setattr(throttles._SentHit, "__init__", sent_then_broken)

    # when the reply cannot be read, then the page is answered
    assert auth_client.get(LIST).status_code == 200
    # and the connection was closed (its unread reply can never be taken for another command's) and given back
    (connection,) = broken_connections
    assert connection._sock is None
    assert _connections_in_use() == 0


@pytest.mark.parametrize("path", ["/api/v1/memory", "/api/v1/storage/records"])
@override_settings(BILLING_RATE_LIMIT_SCALE=1)
def test_the_counts_and_the_records_list_are_throttled_as_before(make_user, path):
    from rest_framework.test import APIClient

    from apps.accounts.models import User
    from apps.accounts.tokens import tokens_issue

    # given a power user (records need a paid tier) and their budget of 120 a minute
    user = make_user()
    User.objects.filter(pk=user.pk).update(tier="power")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens_issue(user=user).access_token}")

    # when / then
    assert [client.get(path).status_code for _ in range(121)] == [200] * 120 + [429]
    assert _window_count(user) == 121
    assert _connections_in_use() == 0


def test_an_unexpected_redis_error_on_the_reply_is_answered_as_drf_answers_it_and_frees_the_connection(
    user, auth_client, monkeypatch
):
    import redis

    real_send = throttles._SentHit.__init__

    def sent_then_refused(self, script, full_key):
        real_send(self, script, full_key)

        def refused(*args, **kwargs):
            raise redis.exceptions.ResponseError("WRONGTYPE")

        monkeypatch.setattr(self._connection, "read_response", refused)  # undone after the test

    monkeypatch.setattr(throttles._SentHit, "__init__", sent_then_refused)

    # when Redis answers with an error that is no outage, then it is raised where allow_request raised
    # it (before the view, in DRF's dispatch) and answered by the API's exception handler
    auth_client.raise_request_exception = False
    answered = auth_client.get(LIST)
    assert answered.status_code == 500
    assert answered.json()["code"] == "internal_error"
    # and the connection is not lost to the pool
    assert _connections_in_use() == 0
