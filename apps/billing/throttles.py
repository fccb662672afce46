"""The per-tier request budget: requests per minute by tier (each team member has their own), on Redis."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import redis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from redis.commands.core import Script
from rest_framework.throttling import BaseThrottle

from apps.core.loop_db import on_server_loop
from apps.core.loop_redis import loop_script
from apps.core.redis_outage import REDIS_UNAVAILABLE_ERRORS, redis_outage_noted
from apps.core.redis_pool import cache_redis

from . import tiers

if TYPE_CHECKING:  # DRF imports this module while rest_framework.views is still loading
    from rest_framework.request import Request
    from rest_framework.views import APIView

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60


# INCR creates the key at 1 and the first hit gives it its expiry; in one script, so a key never
# outlives its window without one, and a request costs one command and one reply.
_HIT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""


# Takes one hit back from a window's counter. Only a counter that still holds a hit: one that expired
# (its window is over) is not made again at -1 without an expiry. DECR keeps the key's expiry.
_REFUND_SCRIPT = """
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count > 0 then return redis.call('DECR', KEYS[1]) end
return 0
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


def _refund_script() -> Script:
    return _registered(_REFUND_SCRIPT)


class _SentHit:
    """A window hit whose script was sent to Redis on a connection of the throttle's pool, its reply
    not read yet: the caller does other work (the session query) while Redis answers."""

    __slots__ = ("_args", "_connection", "_pool", "_script")

    def __init__(self, script: Script, full_key: str) -> None:
        self._script = script
        self._pool = cache_redis().connection_pool  # the client the script was registered on
        self._args = (1, full_key, WINDOW_SECONDS + 1)
        self._connection: Any = self._pool.get_connection()
        try:
            self._connection.send_command("EVALSHA", script.sha, *self._args)
        except BaseException:
            self._release(broken=True)
            raise

    def count(self) -> int:
        """The window's count after this hit (what ``_count_hit`` answers); the connection goes back to its pool."""
        try:
            try:
                return int(self._connection.read_response())
            except redis.exceptions.NoScriptError:
                # Redis forgot the script (a restart, SCRIPT FLUSH): the counter was not touched.
                self._connection.send_command("EVAL", self._script.script, *self._args)
                return int(self._connection.read_response())
        except BaseException:
            self._release(broken=True)
            raise
        finally:
            self._release()

    def refund(self) -> None:
        """Take this hit back from its window's counter. Its reply is read first: once Redis has
        answered, the hit is counted, so the refund (sent after it) can only undo this hit, never
        arrive before it. A reply that cannot be read leaves the hit as it is (counted or not, unknown)."""
        self.count()
        _refund_script()(keys=[self._args[1]])

    def abandon(self) -> None:
        """Give the connection back without its reply: it is closed, so no later command reads it."""
        self._release(broken=True)

    def _release(self, *, broken: bool = False) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            if broken:
                connection.disconnect()
            self._pool.release(connection)


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
        self._sent: tuple[_SentHit, str, float, int] | None = None

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
        backend = caches["default"]
        if not on_server_loop() or not isinstance(backend, RedisCache):
            return await sync_to_async(self.allow_request)(request, view)
        now = time.time()
        window = int(now // WINDOW_SECONDS)
        full_key = backend.make_and_validate_key(_window_key(user.pk, window))
        try:
            count = int(await loop_script(_HIT_SCRIPT)(keys=[full_key], args=[WINDOW_SECONDS + 1]))
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

    def hit_sent_for(self, user_id: str) -> bool:
        """``allow_request`` in two halves, for views that authenticate while Redis answers
        (``apps.core.throttle_beside_auth``): the hit for ``user_id`` (its token's claim, its session
        not asked about yet) is sent; True when ``hit_allowed`` will answer, False when there is
        nothing to wait for (no Redis cache, or Redis unreachable: then ``allow_request`` answers)."""
        backend = caches["default"]
        if not isinstance(backend, RedisCache):
            return False
        now = time.time()
        window = int(now // WINDOW_SECONDS)
        full_key = backend.make_and_validate_key(_window_key(user_id, window))
        try:
            self._sent = (_SentHit(_hit_script(), full_key), user_id, now, window)
        except REDIS_UNAVAILABLE_ERRORS as exc:
            redis_outage_noted(where="tier_rate_throttle", exc=exc)
            return False  # allow_request then fails open, or counts if Redis is back
        return True

    def hit_allowed(self, request: Request, view: APIView) -> bool:
        """The sent hit's answer for the now authenticated user (what ``allow_request`` would have
        answered), once. A user other than the one the hit counted for (never seen: the session query
        answers the token's user or refuses) takes it back and is asked about as DRF asks."""
        assert self._sent is not None, "hit_allowed() without hit_sent_for()"
        sent, user_id, now, window = self._sent
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated or str(user.pk) != user_id:
            self.hit_refunded()
            return self.allow_request(request, view)
        self._sent = None
        try:
            return self._within(sent.count(), _limit(user), now, window)
        except REDIS_UNAVAILABLE_ERRORS as exc:
            redis_outage_noted(where="tier_rate_throttle", exc=exc)
            return True

    def hit_refunded(self) -> None:
        """The sent hit, not read yet, taken back: the request ended before DRF would have asked its
        throttles (its session refused, a permission refused), and DRF counts none of those.
        Idempotent (a hit already read is not taken back). Never raises: the request's own answer
        (a 401, a 403) is what the client gets; a refund Redis refuses is logged and the hit stays."""
        if self._sent is None:
            return
        sent, self._sent = self._sent[0], None
        try:
            sent.refund()
        except REDIS_UNAVAILABLE_ERRORS as exc:
            redis_outage_noted(where="tier_rate_throttle_refund", exc=exc)
        except Exception as exc:  # a refund is best effort: it never replaces the request's answer
            logger.warning("tier throttle: a hit could not be taken back: %s: %s", type(exc).__name__, exc)
        finally:
            sent.abandon()  # whatever failed, the connection is not lost to the pool (no-op once released)

    def wait(self) -> float | None:
        return self._wait
