"""Per-tier rate limits (429 + Retry-After) and tier gates (403 naming feature and tier)."""

from __future__ import annotations

import pytest
from django.test import override_settings
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework.views import APIView

from apps.accounts.models import User
from apps.billing import tiers
from apps.billing.models import BillingAccount
from apps.billing.permissions import RequiresFeature
from apps.billing.throttles import TierRateThrottle
from apps.billing.tiers import Feature

pytestmark = pytest.mark.django_db

ME = "/api/v1/auth/me"


@override_settings(BILLING_RATE_LIMIT_SCALE=1)
def test_a_free_user_gets_20_requests_a_minute_then_429_with_retry_after(auth_client):
    # given
    for _ in range(20):
        assert auth_client.get(ME).status_code == 200

    # when
    response = auth_client.get(ME)

    # then
    assert response.status_code == 429
    assert response.json()["code"] == "rate_limited"
    assert 1 <= int(response["Retry-After"]) <= 60


@override_settings(BILLING_RATE_LIMIT_SCALE=1)
def test_the_budget_is_per_user(auth_client, make_user, api_client):
    # given the first user has spent their budget
    from apps.accounts.tokens import tokens_issue

    first_statuses = [auth_client.get(ME).status_code for _ in range(21)]
    assert first_statuses == [200] * 20 + [429]
    other = make_user()
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens_issue(user=other).access_token}")

    # when / then the second user still has theirs, while the first stays throttled
    assert api_client.get(ME).status_code == 200
    assert auth_client.get(ME).status_code == 429


class _OpenApi(APIView):
    """An endpoint anyone may call, under the project's default throttles."""

    permission_classes = [AllowAny]

    def get(self, request):
        return Response({"ok": True})


def _open_call(user: User | None = None):
    request = APIRequestFactory().get("/open")
    if user is not None:
        force_authenticate(request, user=user)
    return _OpenApi.as_view()(request)


@override_settings(BILLING_RATE_LIMIT_SCALE=1)
def test_anonymous_requests_are_not_counted_against_a_tier(user):
    # given an endpoint that does throttle a free user at 20 a minute
    assert any(isinstance(throttle, TierRateThrottle) for throttle in _OpenApi().get_throttles())

    # when
    anonymous = [_open_call().status_code for _ in range(25)]
    signed_in = [_open_call(user).status_code for _ in range(21)]

    # then anonymous callers pass, and did not spend the free user's budget either
    assert anonymous == [200] * 25
    assert signed_in == [200] * 20 + [429]


class _Request:
    def __init__(self, user: User) -> None:
        self.user = user


@pytest.mark.parametrize(("tier", "seats", "budget"), [("pro", 1, 60), ("power", 1, 120), ("team", 3, 200)])
@override_settings(BILLING_RATE_LIMIT_SCALE=1)
def test_each_tier_has_its_budget_per_member_never_pooled_over_seats(make_user, tier, seats, budget):
    # given
    user = make_user()
    User.objects.filter(pk=user.pk).update(tier=tier)
    user.refresh_from_db()
    BillingAccount.objects.create(user=user, seats=seats)
    throttle = TierRateThrottle()

    # when
    allowed = sum(throttle.allow_request(_Request(user), None) for _ in range(budget + 5))

    # then
    assert allowed == budget
    assert 0 < throttle.wait() <= 60


def test_a_window_counter_always_expires_even_when_its_script_was_flushed(user):
    # given a Redis that forgot the process's throttle script (a restart, SCRIPT FLUSH)
    from django.core.cache import caches

    backend = caches["default"]
    client = backend._cache.get_client(write=True)
    TierRateThrottle().allow_request(_Request(user), None)
    client.script_flush()

    # when the user's requests are counted again
    throttle = TierRateThrottle()
    assert throttle.allow_request(_Request(user), None)
    assert throttle.allow_request(_Request(user), None)

    # then the window's counter holds them, and expires with its window
    (key,) = client.keys(f"*throttle:tier:{user.pk}:*")
    assert int(client.get(key)) == 3
    assert 0 < client.ttl(key) <= 61


def test_the_throttle_counts_without_reaching_into_the_cache_backends_private_client(user, settings, monkeypatch):
    # given a Django whose Redis cache backend no longer has the private client the throttle once read
    import redis
    from django.core.cache.backends.redis import RedisCache

    def moved(self):
        raise AttributeError("RedisCache._cache")

    with monkeypatch.context() as patched:  # the fixtures' teardown clears the cache through it
        patched.setattr(RedisCache, "_cache", property(moved))

        # when a user's requests are counted
        throttle = TierRateThrottle()
        assert throttle.allow_request(_Request(user), None)
        assert throttle.allow_request(_Request(user), None)

    # then the cache's Redis holds the window's counter, with its expiry
    server = redis.Redis.from_url(settings.CACHES["default"]["LOCATION"])
    (key,) = server.keys(f"*throttle:tier:{user.pk}:*")
    assert int(server.get(key)) == 2
    assert 0 < server.ttl(key) <= 61


def test_production_numbers_are_the_spec_numbers():
    assert [tiers.FEATURES[t]["requests_per_minute"] for t in tiers.TIER_ORDER] == [20, 60, 120, 200]


class _MarketplaceApi(APIView):
    permission_classes = [IsAuthenticated, RequiresFeature(Feature.PLUGIN_MARKETPLACE)]

    def get(self, request):
        return Response({"ok": True})


def _call(user: User):
    request = APIRequestFactory().get("/marketplace")
    force_authenticate(request, user=user)
    return _MarketplaceApi.as_view()(request)


def test_a_gated_feature_is_a_403_naming_the_feature_and_the_unlocking_tier(user):
    # when
    response = _call(user)

    # then
    assert response.status_code == 403
    assert response.data["code"] == "feature_not_available"
    assert response.data["feature"] == "plugin_marketplace"
    assert response.data["required_tier"] == "power"
    assert response.data["tier"] == "free"


def test_a_tier_with_the_feature_passes_the_gate(make_user):
    user = make_user(tier="power")

    assert _call(user).status_code == 200


def test_gating_an_unknown_feature_fails_loudly_at_import():
    with pytest.raises(ValueError, match="is not a valid Feature"):
        RequiresFeature("teleportation")
