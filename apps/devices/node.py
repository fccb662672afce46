"""This event loop's presence on the channel layer: one reply channel, one liveness key.

Every loop that calls devices or holds sockets gets a *node*: a channel-layer channel on which
it receives the answers to its tool calls (dispatched to futures by call id, so a call sets up
nothing of its own) and other processes' requests to attach to a stream it runs; and a Redis key
that lives only while the loop does (refreshed every ``DEVICE_NODE_HEARTBEAT`` seconds, expiring
after ``DEVICE_NODE_TTL``), so a caller waiting on a device held by a dead process notices.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings

from .realtime_redis import loop_redis

logger = logging.getLogger(__name__)

ALIVE_KEY = "devices:alive:{node}"

# Channel-layer message handlers other modules plug in (type → coroutine), e.g. stream attach.
_message_handlers: dict[str, Callable[[dict[str, Any]], Awaitable[None]]] = {}


def register_message_handler(message_type: str, handler: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
    _message_handlers[message_type] = handler


class Node:
    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.channel = ""
        self.waiters: dict[str, asyncio.Future] = {}
        self._ready = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    @property
    def name(self) -> str:
        return self.channel

    async def start(self) -> None:
        # The default prefix on purpose: channels-redis receives every "specific." channel of a layer
        # instance through one shared list, and a channel under another prefix would starve them.
        self.channel = await self.layer.new_channel()
        await self._beat()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._receive(), name="devices-node-receive"),
            loop.create_task(self._heartbeat(), name="devices-node-heartbeat"),
        ]
        self._ready.set()

    async def ready(self) -> Node:
        await self._ready.wait()
        return self

    def expect(self, call_id: str) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self.waiters[call_id] = future
        return future

    def forget(self, call_id: str) -> None:
        self.waiters.pop(call_id, None)

    async def _beat(self) -> None:
        await loop_redis().set(ALIVE_KEY.format(node=self.channel), "1", px=int(settings.DEVICE_NODE_TTL * 1000))

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(settings.DEVICE_NODE_HEARTBEAT)
            try:
                await self._beat()
            except Exception:
                logger.warning("devices: node heartbeat failed", exc_info=True)

    async def _receive(self) -> None:
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("devices: node receive failed", exc_info=True)
                await asyncio.sleep(0.1)
                continue
            call_id = message.get("call_id")
            if call_id is not None and call_id in self.waiters:
                future = self.waiters.pop(call_id)
                if not future.done():
                    future.set_result(message)
                continue
            handler = _message_handlers.get(message.get("type", ""))
            if handler is not None:
                task = asyncio.ensure_future(handler(message))
                task.add_done_callback(_log_failure)


def _log_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("devices: node message handler failed", exc_info=task.exception())


_nodes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Node] = weakref.WeakKeyDictionary()


async def loop_node() -> Node:
    """The node of the running loop, started on first use."""
    from .services import loop_layer

    loop = asyncio.get_running_loop()
    node = _nodes.get(loop)
    if node is None:
        node = _nodes[loop] = Node(loop_layer())
        try:
            await node.start()
        except BaseException:
            _nodes.pop(loop, None)
            raise
    return await node.ready()


async def node_alive(name: str) -> bool:
    with contextlib.suppress(Exception):
        return bool(await loop_redis().exists(ALIVE_KEY.format(node=name)))
    return True  # Redis unreachable: do not declare a device dead on that alone
