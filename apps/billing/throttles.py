"""The per-tier request budget: requests per minute by tier (each team member has their own), on Redis."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import redis
from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from redis.commands.core import Script
from rest_framework.throttling import BaseThrottle

from apps.core.redis_outage import REDIS_UNAVAILABLE_ERRORS, redis_outage_noted
from apps.core.redis_pool import cache_redis

from . import tiers

if TYPE_CHECKING:  # DRF imports this module while rest_framework.views is still loading
    from rest_framework.request import Request
    from rest_framework.views import APIView

WINDOW_SECONDS = 60


# INCR creates the key at 1 and the first hit gives it its expiry; in one script, so a key never
# outlives its window without one, and a request costs one command and one reply.
_HIT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""


# One registered script per client (``cache_redis`` keeps one client per process and server).
_hit_scripts: dict[redis.Redis, Script] = {}


def _hit_script() -> Script:
    """The hit script on a client of the cache's server made once per process: Django makes a new
    Redis client per ``get_client()``, and its construction (a table of ~170 response callbacks)
    cost as much of the process's time as the round trip itself."""
    client = cache_redis()
    script = _hit_scripts.get(client)
    if script is None:
        script = _hit_scripts[client] = client.register_script(_HIT_SCRIPT)
    return script


def _count_hit(key: str) -> int:
    """Increment the window's counter and return it, in one Redis round trip where possible."""
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        full_key = backend.make_and_validate_key(key)
        return int(_hit_script()(keys=[full_key], args=[WINDOW_SECONDS + 1]))
    cache.add(key, 0, timeout=WINDOW_SECONDS + 1)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr: a new window has begun
        cache.add(key, 1, timeout=WINDOW_SECONDS + 1)
        return 1


class TierRateThrottle(BaseThrottle):
    """Authenticated requests per minute by the caller's tier; anonymous requests pass through.

    A fixed one-minute window counted with an atomic increment: one small Redis key per user and
    one round trip per request whatever the budget (DRF's SimpleRateThrottle keeps a list of every request's time, which
    for a 50-seat team would be 10 000 entries rewritten on each request).
    """

    def __init__(self) -> None:
        self._wait: float | None = None

    def allow_request(self, request: Request, view: APIView) -> bool:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return True
        try:
            return self._allow(user)
        except REDIS_UNAVAILABLE_ERRORS as exc:
            # Fails open: a Redis outage must not turn every API call into an error; the budget is
            # abuse protection, not a security boundary (login throttles fail closed instead).
            redis_outage_noted(where="tier_rate_throttle", exc=exc)
            return True

    def _allow(self, user: Any) -> bool:
        # Per member, never pooled: each member of a team has the team tier's own budget.
        limit = tiers.requests_per_minute(user) * settings.BILLING_RATE_LIMIT_SCALE
        now = time.time()
        window = int(now // WINDOW_SECONDS)
        count = _count_hit(f"throttle:tier:{user.pk}:{window}")
        if count > limit:
            self._wait = (window + 1) * WINDOW_SECONDS - now
            return False
        return True

    def wait(self) -> float | None:
        return self._wait
