"""The asyncio Redis clients of the running event loop, for presence, liveness and stream logs.

One client per loop (a redis.asyncio connection pool is bound to the loop that opened it); it
talks to the cache's Redis database. ``loop_script`` registers a Lua script on that client once.
A loop that ends (async_to_sync makes one per call) closes its clients (``loop_redis_close``).

The pool is bounded and waits: redis-py's default asyncio pool raises ``MaxConnectionsError`` past
100 connections, so a storm of sockets closing together failed most of its presence withdrawals.
Here a caller past ``DEVICE_REDIS_POOL_SIZE`` connections waits up to ``DEVICE_REDIS_POOL_TIMEOUT``
seconds for one to come back. The node's liveness heartbeat has a connection of its own
(``loop_heartbeat_redis``) so it never queues behind socket traffic, and so do node messages
(``loop_publisher``, see node_wire.py).
"""

from __future__ import annotations

import asyncio
import weakref

import redis.asyncio as aioredis
from django.conf import settings
from redis.commands.core import AsyncScript

from .node_wire import Publisher

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = weakref.WeakKeyDictionary()
_heartbeat_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = weakref.WeakKeyDictionary()
_publishers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Publisher] = weakref.WeakKeyDictionary()
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


def loop_heartbeat_redis() -> aioredis.Redis:
    """This loop's one-connection client for the node's liveness key, apart from the shared pool."""
    loop = asyncio.get_running_loop()
    client = _heartbeat_clients.get(loop)
    if client is None:
        client = _heartbeat_clients[loop] = aioredis.Redis.from_url(
            str(settings.CACHES["default"]["LOCATION"]),
            single_connection_client=True,
            socket_timeout=settings.DEVICE_NODE_TTL,
            health_check_interval=30,
        )
    return client


def loop_publisher() -> Publisher:
    """This loop's connection for node messages (``PUBLISH`` pipelined on it, apart from the pool)."""
    loop = asyncio.get_running_loop()
    publisher = _publishers.get(loop)
    if publisher is None:
        publisher = _publishers[loop] = Publisher()
    return publisher


def loop_script(source: str) -> AsyncScript:
    """``source`` registered on this loop's client (EVALSHA after the first call)."""
    client = loop_redis()
    scripts = _scripts.setdefault(asyncio.get_running_loop(), {})
    script = scripts.get(source)
    if script is None:
        script = scripts[source] = client.register_script(source)
    return script


async def loop_redis_close() -> None:
    """Close the running loop's clients (its loop is ending)."""
    loop = asyncio.get_running_loop()
    _scripts.pop(loop, None)
    publisher = _publishers.pop(loop, None)
    if publisher is not None:
        await publisher.close()
    for clients in (_clients, _heartbeat_clients):
        client = clients.pop(loop, None)
        if client is not None:
            await client.aclose()
