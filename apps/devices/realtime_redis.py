"""The asyncio Redis client of the running event loop, for presence, liveness and stream logs.

One client per loop (a redis.asyncio connection pool is bound to the loop that opened it); it
talks to the cache's Redis database. ``loop_script`` registers a Lua script on that client once.
A loop that ends (async_to_sync makes one per call) closes its client (``loop_redis_close``).
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
        client = _clients[loop] = aioredis.Redis.from_url(
            settings.CACHES["default"]["LOCATION"], socket_timeout=10, health_check_interval=30
        )
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
    """Close the running loop's client (its loop is ending)."""
    loop = asyncio.get_running_loop()
    _scripts.pop(loop, None)
    client = _clients.pop(loop, None)
    if client is not None:
        await client.aclose()
