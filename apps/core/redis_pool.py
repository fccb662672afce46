"""One Redis connection pool per process and server for Django's cache, whatever the request context.

Django's cache handler is per request context under ASGI, so ``caches["default"]`` is a new
``RedisCache`` (with a new pool) on every request: each request opened a fresh connection and
paid its health check (the per-tier throttle touches the cache on every API call). Named as the
cache's ``pool_class`` option, this class hands every ``RedisCache`` of the process the same pool
for the same URL and options. redis-py's pool is thread-safe and resets itself after a fork.
"""

from __future__ import annotations

import threading
from typing import Any

import redis

_pools: dict[tuple[str, str], redis.ConnectionPool] = {}
_lock = threading.Lock()


class SharedConnectionPool(redis.ConnectionPool):
    """``from_url`` returns the process's pool for that URL and options, made on first use."""

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> redis.ConnectionPool:  # type: ignore[override]
        key = (url, repr(sorted(kwargs.items())))
        pool = _pools.get(key)
        if pool is None:
            with _lock:
                pool = _pools.get(key)
                if pool is None:
                    pool = _pools[key] = super().from_url(url, **kwargs)
        return pool
