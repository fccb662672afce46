"""The asyncio Redis client of the running event loop, on the cache's Redis database.

One client per loop (a redis.asyncio connection pool is bound to the loop that opened it), shared by
what runs on the loop: the device sockets' presence and stream logs (``apps.devices.realtime_redis``)
and the throttle of the API views awaited there. ``loop_script`` registers a Lua script on it once.
A loop that ends closes it (``loop_redis_close``).

The pool is bounded and waits: redis-py's default asyncio pool raises ``MaxConnectionsError`` past
100 connections, so a storm of sockets closing together failed most of its presence withdrawals.
Here a caller past ``DEVICE_REDIS_POOL_SIZE`` connections waits up to ``DEVICE_REDIS_POOL_TIMEOUT``
seconds for one to come back.
"""

from __future__ import annotations

import asyncio
import weakref

import redis.asyncio as aioredis
from django.conf import settings
from redis.commands.core import AsyncScript

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = weakref.WeakKeyDictionary()
_scripts: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, AsyncScript]] = weakref.WeakKeyDictionary()


def loop_redis() -> aioredis.Redis:
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        pool = aioredis.BlockingConnectionPool.from_url(
            str(settings.CACHES["default"]["LOCATION"]),
            max_connections=settings.DEVICE_REDIS_POOL_SIZE,
            timeout=settings.DEVICE_REDIS_POOL_TIMEOUT,
            socket_timeout=settings.DEVICE_REDIS_SOCKET_TIMEOUT,
            health_check_interval=30,
        )
        client = _clients[loop] = aioredis.Redis.from_pool(pool)
    return client


def loop_script(source: str) -> AsyncScript:
    """``source`` registered on this loop's client (EVALSHA after the first call)."""
    client = loop_redis()
    scripts = _scripts.setdefault(asyncio.get_running_loop(), {})
    script = scripts.get(source)
    if script is None:
        script = scripts[source] = client.register_script(source)
    return script


async def loop_redis_close() -> None:
    """Close the running loop's client and forget its scripts (its loop is ending)."""
    loop = asyncio.get_running_loop()
    _scripts.pop(loop, None)
    client = _clients.pop(loop, None)
    if client is not None:
        await client.aclose()
