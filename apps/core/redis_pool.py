"""One Redis connection pool per process and server for Django's cache, whatever the request context.

Django's cache handler is per request context under ASGI, so ``caches["default"]`` is a new
``RedisCache`` (with a new pool) on every request: each request opened a fresh connection and
paid its health check (the per-tier throttle touches the cache on every API call). Named as the
cache's ``pool_class`` option, this class hands every ``RedisCache`` of the process the same pool
for the same URL and options. redis-py's pool is thread-safe and resets itself after a fork.
``cache_redis`` is a client of the cache's server of our own, for what the cache API cannot say, and
``cache_backend`` the process's backend object for what needs only the cache's settings.
"""

from __future__ import annotations

import threading
from typing import Any

import redis
from django.conf import settings
from django.core.cache import BaseCache, caches
from django.utils.module_loading import import_string

from .per_settings import PerSettings

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


_clients: dict[tuple[str, str], redis.Redis] = {}
_clients_lock = threading.Lock()  # not ``_lock``: the pool class below may take that one


def _cache_settings(alias: str) -> dict[str, Any]:
    return settings.CACHES[alias]


def _cache_client(alias: str) -> redis.Redis:
    config = _cache_settings(alias)
    location = config["LOCATION"]
    server = (location.split(",") if isinstance(location, str) else list(location))[0].strip()
    options: dict[str, Any] = dict(config.get("OPTIONS") or {})
    pool_class = options.pop("pool_class", "redis.ConnectionPool")
    for django_only in ("parser_class", "serializer"):
        options.pop(django_only, None)
    key = (server, repr(sorted(options.items())) + repr(pool_class))
    client = _clients.get(key)
    if client is None:
        with _clients_lock:
            client = _clients.get(key)
            if client is None:
                pool_type = import_string(pool_class) if isinstance(pool_class, str) else pool_class
                client = _clients[key] = redis.Redis(connection_pool=pool_type.from_url(server, **options))
    return client


# A redis-py client of cache ``alias``'s write server (the first of its LOCATION), with the cache's
# connection options and pool class, made once per process: for what Django's cache API cannot say (a
# Lua script), without reaching into the backend's private client. Its pool is not Django's (the
# options differ by the parser Django adds), but it is one per process, as Django's is. Every request
# asks: the settings are parsed again only when they are replaced.
cache_redis: PerSettings[redis.Redis] = PerSettings(settings_of=_cache_settings, make=_cache_client)


# Cache ``alias``'s backend, one per process (per settings), for what needs only its settings: its
# class, the form of its keys. ``caches[alias]`` is the request context's own under ASGI, so asking it
# on the loop made a new backend object for every request.
cache_backend: PerSettings[BaseCache] = PerSettings(settings_of=_cache_settings, make=caches.create_connection)
