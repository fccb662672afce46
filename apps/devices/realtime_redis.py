"""The asyncio Redis client of the running event loop, for presence, liveness and stream logs.

One client per loop (a redis.asyncio connection pool is bound to the loop that opened it); it
talks to the cache's Redis database.
"""

from __future__ import annotations

import asyncio
import weakref

import redis.asyncio as aioredis
from django.conf import settings

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = weakref.WeakKeyDictionary()


def loop_redis() -> aioredis.Redis:
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        client = _clients[loop] = aioredis.Redis.from_url(
            settings.CACHES["default"]["LOCATION"], socket_timeout=10, health_check_interval=30
        )
    return client


async def loop_redis_close() -> None:
    """Close the running loop's client (its loop is ending: async_to_sync makes a loop per call)."""
    client = _clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()
