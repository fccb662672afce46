"""The asyncio Redis clients of the running event loop, for presence, liveness and stream logs.

The loop's shared client and its scripts are ``apps.core.loop_redis``'s (``loop_redis``,
``loop_script``; the API's throttle uses them too). A loop that ends (async_to_sync makes one per
call) closes its clients (``loop_redis_close``). The node's liveness heartbeat has a connection of its own
(``loop_heartbeat_redis``) so it never queues behind socket traffic, and so do node messages
(``loop_publisher``, see node_wire.py).
"""

from __future__ import annotations

import asyncio
import weakref

import redis.asyncio as aioredis
from django.conf import settings

from apps.core.loop_redis import loop_redis, loop_script
from apps.core.loop_redis import loop_redis_close as shared_loop_redis_close

from .node_wire import Publisher

__all__ = ["loop_heartbeat_redis", "loop_publisher", "loop_redis", "loop_redis_close", "loop_script"]

_heartbeat_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = weakref.WeakKeyDictionary()
_publishers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Publisher] = weakref.WeakKeyDictionary()


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


async def loop_redis_close() -> None:
    """Close the running loop's clients (its loop is ending)."""
    loop = asyncio.get_running_loop()
    publisher = _publishers.pop(loop, None)
    if publisher is not None:
        await publisher.close()
    client = _heartbeat_clients.pop(loop, None)
    if client is not None:
        await client.aclose()
    await shared_loop_redis_close()
