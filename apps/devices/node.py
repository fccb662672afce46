"""This event loop's presence for other processes: a Redis pub/sub channel and a liveness key.

Every loop that calls devices or holds sockets gets a *node*. Other processes reach it by
publishing to its channel (``devices:node:<name>``): tool calls for the sockets it holds, the
answers to the calls it made (resolved to the waiting future by call id, so a call sets up
nothing of its own), requests to attach to a stream it runs. One subscription per loop, whose
messages are handled as its bytes arrive (the connection's callback, no task); a publish is a single
round trip and tells the sender how many nodes heard it, so a call to a node that is gone fails at
once. Both go over connections of their own, read and written directly (node_wire.py), not through
redis-py's pub/sub client and pool. The liveness key lives only while the loop does
(refreshed every ``DEVICE_NODE_HEARTBEAT`` seconds, expiring after ``DEVICE_NODE_TTL``), so a
caller waiting on a device held by a process that died mid-call notices within seconds.

Pub/sub delivers at most once: nothing here is retried. A caller that hears nothing learns it
from the holder's liveness key or its own deadline. Messages carry user content (tool calls and
results, ``agent_run`` prompts, ``agent_data`` files), so they cross Redis sealed (``transit_seal``,
AES-GCM: a tool call's round trip seals and opens two messages).
"""

from __future__ import annotations

import asyncio
import collections.abc
import contextlib
import json
import logging
import os
import uuid
import weakref
from collections.abc import Callable, Coroutine, Generator
from typing import Any

import orjson
from django.conf import settings

from apps.core.cancellation import raise_if_cancelling
from apps.core.encryption import (
    FERNET_TOKEN_PREFIX,
    InvalidToken,
    redis_seal,
    redis_unseal,
    transit_seal,
    transit_unseal,
)

from .node_wire import NodeSubscription
from .realtime_redis import loop_heartbeat_redis, loop_publisher, loop_redis, loop_redis_close

logger = logging.getLogger(__name__)

ALIVE_KEY = "devices:alive:{node}"
CLEANUP_SECONDS = 1.0  # what a node may spend saying goodbye when its loop ends
NODE_CHANNEL = "devices:node:{node}"

# The answers to a node's own tool calls; every other message type goes to a registered handler.
MSG_RESULT = "devices.tool_result"
MSG_FAILED = "devices.call_failed"
_REPLY_TYPES = frozenset({MSG_RESULT, MSG_FAILED})

NodeMessageHandler = Callable[[dict[str, Any]], Coroutine[Any, Any, None]]
_message_handlers: dict[str, tuple[NodeMessageHandler, bool]] = {}


def register_message_handler(message_type: str, handler: NodeMessageHandler, *, eager: bool = False) -> None:
    """Route node messages of ``message_type`` to ``handler``, run as a task on the node's loop.

    ``eager``: run it at once instead, a task only from its first wait on (``run_eagerly``). Only
    for a handler that, before it first waits, neither enters ``asyncio.timeout`` nor reads
    ``asyncio.current_task()``: that part runs in the subscription's callback, outside any task
    (``tests/test_eager_node_handlers.py`` holds the tool-call handlers to it)."""
    _message_handlers[message_type] = (handler, eager)


class Node:
    def __init__(self) -> None:
        # No spaces: the presence index stores "channel node last_seen".
        self.name = f"{os.getpid()}-{uuid.uuid4().hex}"
        self.waiters: dict[str, asyncio.Future] = {}
        self._subscription = NodeSubscription(NODE_CHANNEL.format(node=self.name), self._received)
        self._ready = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._stopping = False

    async def start(self) -> None:
        await self._subscription.open()
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
        """A future the answer to call ``call_id`` will resolve (publish it with ``reply_to=self.name``)."""
        future = asyncio.get_running_loop().create_future()
        self.waiters[call_id] = future
        return future

    def forget(self, call_id: str) -> None:
        self.waiters.pop(call_id, None)

    async def _beat(self) -> None:
        # Its own connection: a beat queued behind a storm of socket traffic would let the key lapse.
        await loop_heartbeat_redis().set(ALIVE_KEY.format(node=self.name), "1", px=int(settings.DEVICE_NODE_TTL * 1000))

    # The loop is ending when either task is cancelled (asyncio.run / async_to_sync cancel what is
    # left). Each task then marks the node stopping and closes what the other may be blocked on, so
    # both end even if a library turned a cancellation into an ordinary error (a CPython 3.11
    # timeout racing a cancel does): a task that kept looping would hold the loop's shutdown forever.

    async def _heartbeat(self) -> None:
        try:
            while not self._stopping:
                await asyncio.sleep(settings.DEVICE_NODE_HEARTBEAT)
                try:
                    await self._beat()
                except Exception:
                    raise_if_cancelling()
                    logger.warning("devices: node heartbeat failed", exc_info=True)
        finally:
            self._stopping = True
            # Say so at once, bounded, so a Redis that does not answer cannot keep the loop open.
            with contextlib.suppress(BaseException):
                async with asyncio.timeout(CLEANUP_SECONDS):
                    await loop_heartbeat_redis().delete(ALIVE_KEY.format(node=self.name))
            await self._close_subscription()
            with contextlib.suppress(BaseException):
                async with asyncio.timeout(CLEANUP_SECONDS):
                    await loop_redis_close()

    async def _close_subscription(self) -> None:
        with contextlib.suppress(BaseException):
            async with asyncio.timeout(CLEANUP_SECONDS):
                await self._subscription.close()

    async def _receive(self) -> None:
        try:
            # Waits without a timeout while the connection delivers; reconnects and subscribes again after a drop.
            await self._subscription.read_forever(stopping=lambda: self._stopping)
        finally:
            self._stopping = True
            await self._close_subscription()

    def _received(self, data: bytes) -> None:
        try:
            message = decode(data)
        except (ValueError, InvalidToken):
            logger.warning("devices: node %s dropped an unreadable message", self.name)
            return
        self.dispatch(message)

    def dispatch(self, message: dict[str, Any]) -> None:
        message_type = message.get("type", "")
        if message_type in _REPLY_TYPES:
            future = self.waiters.pop(message.get("call_id", ""), None)
            if future is not None and not future.done():
                future.set_result(message)
            return  # else late: the caller gave up
        registered = _message_handlers.get(message_type)
        if registered is None:
            logger.warning("devices: node %s has no handler for %r", self.name, message_type)
            return
        handler, eager = registered
        if eager:
            run_eagerly(handler(message))
        else:
            asyncio.ensure_future(handler(message)).add_done_callback(_log_failure)


def run_eagerly(coro: Coroutine[Any, Any, None]) -> asyncio.Future | None:
    """Run ``coro`` at once, on the caller's stack, up to its first real wait; only a coroutine
    that does wait goes on as a task (returned). A tool call for a socket held here ends in a
    socket write that does not wait, so most messages never pay a task's creation and scheduling
    (Python 3.12's eager tasks, by hand). A failure is logged, as a task's would be."""
    try:
        waiting_on = coro.send(None)
    except StopIteration:
        return None
    except Exception:
        logger.exception("devices: node message handler failed")
        return None
    task = asyncio.ensure_future(_Resumed(coro, waiting_on))
    task.add_done_callback(_log_failure)
    return task


class _Resumed(collections.abc.Coroutine):
    """A coroutine already started, for a task to drive on: the task's first step gets back what
    it was waiting on, every later one goes straight to it. A cancellation before that first step
    reaches it too (an ``async def`` wrapper not yet started would drop it and leave it suspended)."""

    def __init__(self, coro: Coroutine[Any, Any, None], waiting_on: Any) -> None:
        self._coro, self._waiting_on, self._started = coro, waiting_on, False

    def send(self, value: Any) -> Any:
        if not self._started:
            self._started = True
            return self._waiting_on
        return self._coro.send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        self._started = True
        return self._coro.throw(typ if val is None else val)

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, Any, None]:
        raise TypeError("a resumed coroutine is driven by its task, not awaited")


def _log_failure(task: asyncio.Future) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("devices: node message handler failed", exc_info=task.exception())


_nodes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Node] = weakref.WeakKeyDictionary()


async def loop_node() -> Node:
    """The node of the running loop, started on first use."""
    loop = asyncio.get_running_loop()
    node = _nodes.get(loop)
    if node is None:
        node = _nodes[loop] = Node()
        try:
            await node.start()
        except BaseException:
            _nodes.pop(loop, None)
            raise
    return await node.ready()


def _dumps(message: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(message, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # what orjson refuses and json takes (an int past 64 bits, a lone surrogate)
        return json.dumps(message, separators=(",", ":")).encode()


def _loads(data: bytes | str) -> dict[str, Any]:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:  # what only json reads (NaN, a lone surrogate's escape)
        return json.loads(data)


def encode(message: dict[str, Any]) -> bytes:
    """A node message as published (JSON, sealed with the Redis keys)."""
    if settings.DEVICE_NODE_SEAL == "fernet":  # for processes of the previous release, during a roll
        return redis_seal(json.dumps(message, separators=(",", ":"))).encode("ascii")
    return transit_seal(_dumps(message))


def decode(data: bytes | str) -> dict[str, Any]:
    raw = data.encode("ascii") if isinstance(data, str) else bytes(data)
    if raw.startswith(FERNET_TOKEN_PREFIX):  # what nodes published before transit_seal (a roll)
        return _loads(redis_unseal(raw))
    return _loads(transit_unseal(raw))


async def node_publish(node: str, message: dict[str, Any]) -> int:
    """Publish ``message`` to ``node``; returns how many subscribers heard it (0: the node is gone)."""
    return await loop_publisher().publish(NODE_CHANNEL.format(node=node), encode(message))


def node_publish_soon(node: str, message: dict[str, Any]) -> asyncio.Future | None:
    """``node_publish`` written at once, not waited for: the future resolves with how many heard it.
    None (nothing sent) while this loop's publishing connection is not open or is backed up."""
    return loop_publisher().publish_soon(NODE_CHANNEL.format(node=node), encode(message))


async def node_alive(name: str) -> bool:
    with contextlib.suppress(Exception):
        return bool(await loop_redis().exists(ALIVE_KEY.format(node=name)))
    return True  # Redis unreachable: do not declare a device dead on that alone
