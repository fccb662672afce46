"""The per-tier request budget: requests per minute by tier (each team member has their own), on Redis."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import redis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.core.cache.backends.redis import RedisCache
from redis.commands.core import Script
from rest_framework.throttling import BaseThrottle

from apps.core.loop_batches import loop_loader
from apps.core.loop_db import on_server_loop
from apps.core.loop_redis import loop_script
from apps.core.redis_outage import REDIS_UNAVAILABLE_ERRORS, redis_outage_noted
from apps.core.redis_pool import cache_backend, cache_redis

from . import tiers

if TYPE_CHECKING:  # DRF imports this module while rest_framework.views is still loading
    from rest_framework.request import Request
    from rest_framework.views import APIView

WINDOW_SECONDS = 60


# INCR creates a key at 1 and its first hit gives it its expiry; in one script, so a key never
# outlives its window without one. One hit per key, in order (a key given twice counts two hits):
# the requests of one turn of the server's loop are counted by one command and one reply.
_HIT_SCRIPT = """
local counts = {}
for i, key in ipairs(KEYS) do
  local count = redis.call('INCR', key)
  if count == 1 then redis.call('EXPIRE', key, ARGV[1]) end
  counts[i] = count
end
return counts
"""


# One registered script per client and source (``cache_redis`` keeps one client per process and server).
_scripts: dict[tuple[redis.Redis, str], Script] = {}


def _registered(source: str) -> Script:
    """``source`` as a script on a client of the cache's server, made once per process: Django makes
    a new Redis client per ``get_client()``, and its construction (a table of ~170 response
    callbacks) cost as much of the process's time as the round trip itself."""
    client = cache_redis()
    script = _scripts.get((client, source))
    if script is None:
        script = _scripts[(client, source)] = client.register_script(source)
    return script


def _hit_script() -> Script:
    return _registered(_HIT_SCRIPT)


def _count_hit(key: str) -> int:
    """Increment the window's counter and return it, in one Redis round trip where possible."""
    backend = cache_backend()
    if isinstance(backend, RedisCache):
        full_key = backend.make_and_validate_key(key)
        (count,) = _hit_script()(keys=[full_key], args=[WINDOW_SECONDS + 1])
        return int(count)
    cache.add(key, 0, timeout=WINDOW_SECONDS + 1)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr: a new window has begun
        cache.add(key, 1, timeout=WINDOW_SECONDS + 1)
        return 1


async def _hits_counted(keys: list[str]) -> list[Any]:
    """One hit on each key, by one script call on the loop's client: the window's count after each."""
    return list(await loop_script(_HIT_SCRIPT)(keys=keys, args=[WINDOW_SECONDS + 1]))


def _window_key(user_id: Any, window: int) -> str:
    return f"throttle:tier:{user_id}:{window}"


def _limit(user: Any) -> int:
    # Per member, never pooled: each member of a team has the team tier's own budget.
    return tiers.requests_per_minute(user) * settings.BILLING_RATE_LIMIT_SCALE


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

    async def aallow_request(self, request: Request, view: APIView) -> bool:
        """``allow_request`` for views awaited on the server's loop: the hit is this loop's Redis
        script call (``apps.core.loop_redis``); elsewhere, or without a Redis cache, in the thread."""
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return True
        backend = cache_backend()
        if not on_server_loop() or not isinstance(backend, RedisCache):
            return await sync_to_async(self.allow_request)(request, view)
        now = time.time()
        window = int(now // WINDOW_SECONDS)
        full_key = backend.make_and_validate_key(_window_key(user.pk, window))
        loader = loop_loader("tier_rate_throttle", _hits_counted, max_batch_size=settings.BILLING_THROTTLE_BATCH_MAX)
        try:
            count = int(await loader.load(full_key))
        except REDIS_UNAVAILABLE_ERRORS as exc:  # fails open, as allow_request
            redis_outage_noted(where="tier_rate_throttle", exc=exc)
            return True
        return self._within(count, _limit(user), now, window)

    def _allow(self, user: Any) -> bool:
        now = time.time()
        window = int(now // WINDOW_SECONDS)
        return self._within(_count_hit(_window_key(user.pk, window)), _limit(user), now, window)

    def _within(self, count: int, limit: int, now: float, window: int) -> bool:
        if count > limit:
            self._wait = (window + 1) * WINDOW_SECONDS - now
            return False
        return True

    def wait(self) -> float | None:
        return self._wait
