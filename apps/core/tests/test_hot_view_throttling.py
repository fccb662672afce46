"""The hot read views (async, apps.core.loop_views) are throttled as DRF throttles: every request that
reaches its throttles counted once, a 401 or a 403 not counted, 429 with Retry-After past the budget
(before a 404 too), a refused request's view never run, other methods refused before they run, Redis
connections back in their pool, and a Redis outage still fails open. Through the test client, so the
throttle is asked in the thread; on the server's loop: test_loop_views.py."""

from __future__ import annotations

import pytest
from django.test import override_settings
from rest_framework.permissions import BasePermission

from apps.billing import throttles
from apps.core.loop_views import LoopApiView
from apps.core.redis_pool import cache_redis
from apps.memory.models import CoreMemory
from apps.memory.services import core_memory_set

pytestmark = pytest.mark.django_db

LIST = "/api/v1/memory/core"  # MemoryKindApi, its GET async
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
    real_page, real_count = apis.amemory_page, apis.memory_kind_count

    async def counted_page(**kw):
        reads.append("page")
        return await real_page(**kw)

    monkeypatch.setattr(apis, "amemory_page", counted_page)
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


@override_settings(BILLING_RATE_LIMIT_SCALE=1)
def test_a_revoked_session_is_a_401_and_is_not_counted(user, auth_client):
    from rest_framework.test import APIClient

    from apps.accounts.tokens import sessions_revoke_for_users, tokens_issue

    # given a valid access token whose session was revoked
    sessions_revoke_for_users(user_ids=[user.id], reason="staff", actor=None)

    # when more pages than the free budget are asked for with it
    refused = [auth_client.get(LIST) for _ in range(FREE_BUDGET + 5)]

    # then each is refused as before and, as DRF never reaches its throttles for a 401, not counted
    assert {response.status_code for response in refused} == {401}
    assert {response.json()["code"] for response in refused} == {"authentication_failed"}
    assert _window_count(user) == 0
    assert _connections_in_use() == 0

    # and the user, signed in again, still has their whole budget
    core_memory_set(user_id=user.id, key="timezone", value="UTC")
    fresh = APIClient()
    fresh.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens_issue(user=user).access_token}")
    assert [fresh.get(LIST).status_code for _ in range(FREE_BUDGET)] == [200] * FREE_BUDGET
    assert fresh.get(LIST).status_code == 429
    assert _window_count(user) == FREE_BUDGET + 1
    assert _connections_in_use() == 0


class _RefusesEveryone(BasePermission):
    def has_permission(self, request, view):
        return False  # an authenticated user refused: DRF answers 403


class _RefusingView(LoopApiView):
    """No throttled view of the API answers 403 to an authenticated user (IsAuthenticated only): this one does."""

    permission_classes = [_RefusesEveryone]

    async def get(self, request):
        raise AssertionError("a refused request never runs its view")


@override_settings(BILLING_RATE_LIMIT_SCALE=1)
def test_a_request_a_permission_refuses_is_a_403_and_is_not_counted(user, tokens):
    from asgiref.sync import async_to_sync
    from rest_framework.test import APIRequestFactory

    factory = APIRequestFactory()
    view = async_to_sync(_RefusingView.as_view())

    # when more requests than the free budget are refused by a permission
    statuses = [
        view(factory.get("/refusing", HTTP_AUTHORIZATION=f"Bearer {tokens.access_token}")).status_code
        for _ in range(FREE_BUDGET + 5)
    ]

    # then each is a 403 (not a 429: nothing was counted), as DRF, which asks permissions before throttles
    assert statuses == [403] * (FREE_BUDGET + 5)
    assert _window_count(user) == 0
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


def test_a_redis_outage_fails_open(user, auth_client, monkeypatch):
    import redis

    def unreachable(self, *args, **kwargs):
        raise redis.exceptions.ConnectionError("Redis is down")

    # given a Redis that refuses every connection
    monkeypatch.setattr(throttles, "_count_hit", lambda key: unreachable(None))

    # when a page is asked for, then it is answered (the budget is abuse protection, not a boundary)
    assert auth_client.get(LIST).status_code == 200


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


def test_an_unexpected_redis_error_is_answered_by_the_api_s_exception_handler(user, auth_client, monkeypatch):
    import redis

    def wrong_type(key):
        raise redis.exceptions.ResponseError("WRONGTYPE")

    monkeypatch.setattr(throttles, "_count_hit", wrong_type)

    # when Redis answers with an error that is no outage, then it is raised where allow_request raises it
    # (before the view) and answered by the API's exception handler
    auth_client.raise_request_exception = False
    answered = auth_client.get(LIST)
    assert answered.status_code == 500
    assert answered.json()["code"] == "internal_error"
