"""The wire of node messages: Redis pub/sub read and written directly rather than through
redis-py's client.

A tool call from another process crosses Redis twice, and redis-py's pure-Python pub/sub reader
and pooled ``PUBLISH`` cost several times what Redis itself does (``bench/device_roundtrip.py``).
Here a node's channel has one connection whose messages are parsed from the socket's bytes and
handed to a callback as they arrive (``NodeSubscription``), and each loop has one connection that
pipelines ``PUBLISH`` and matches the replies in order (``Publisher``). Both connections are opened
by redis-py (URL, TLS for ``rediss://``, AUTH and database as every other client), in RESP2, and then
read and written through the asyncio streams redis-py keeps on the connection (``_reader`` and
``_writer``, private: redis-py has no public way to read a connection's bytes as they arrive, and its
public ``read_response`` parses in pure Python without hiredis, the cost this module removes).
``_streams`` fails with a clear error if a redis-py upgrade drops them, and a test says so too.
A command or subscription Redis leaves unanswered fails after ``DEVICE_REDIS_SOCKET_TIMEOUT``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import hashlib
import logging
import os
import uuid
from collections.abc import Callable
from typing import Any

import redis
import redis.asyncio as aioredis
from django.conf import settings
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

_READ_SIZE = 65536
_DRAIN_ABOVE = 65536  # bytes waiting in the transport before a publisher waits for them to go


# Client names of the node connections (``CLIENT LIST``: which are a node's, and whose)
SUBSCRIPTION_CLIENT = "adiuva-node-sub"
PUBLISHER_CLIENT = "adiuva-node-pub"


class RespError(str):
    """An error reply (``-ERR ...``)."""


def command(*args: bytes | str) -> bytes:
    """One command in RESP (an array of bulk strings)."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else arg
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def _parse(buf: bytearray, pos: int) -> tuple[Any, int] | None:
    """The RESP value at ``pos`` and the position after it; None if it has not all arrived."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        return None
    kind, line = buf[pos], buf[pos + 1 : end]
    if kind == 36:  # $ bulk string
        size = int(line)
        if size < 0:
            return None, end + 2
        start = end + 2
        if len(buf) < start + size + 2:
            return None
        return bytes(buf[start : start + size]), start + size + 2
    if kind in (42, 62):  # * array, > push (RESP3)
        count, at = int(line), end + 2
        items = []
        for _ in range(max(count, 0)):
            parsed = _parse(buf, at)
            if parsed is None:
                return None
            item, at = parsed
            items.append(item)
        return items, at
    if kind == 58:  # : integer
        return int(line), end + 2
    if kind == 43:  # + simple string
        return bytes(line), end + 2
    if kind == 45:  # - error
        return RespError(bytes(line).decode(errors="replace")), end + 2
    raise RedisConnectionError(f"unexpected RESP type {chr(kind)!r} on a node connection")


class RespReader:
    """Complete RESP values out of the bytes as they arrive."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Any]:
        buf = self._buf
        buf += data
        values, pos = [], 0
        while pos < len(buf):
            parsed = _parse(buf, pos)
            if parsed is None:
                break
            value, pos = parsed
            values.append(value)
        del buf[:pos]
        return values


async def open_connection(*, client_name: str) -> aioredis.Connection:
    """A connection to the cache's Redis, connected and authenticated by redis-py, speaking RESP2
    (named ``client_name`` in ``CLIENT LIST``)."""
    timeout = settings.DEVICE_REDIS_SOCKET_TIMEOUT
    pool = aioredis.ConnectionPool.from_url(
        str(settings.CACHES["default"]["LOCATION"]),
        protocol=2,
        client_name=client_name,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,  # redis-py's own handshake (AUTH, SELECT, CLIENT SETNAME)
    )
    connection = pool.make_connection()
    await connection.connect()
    return connection


def _streams(connection: aioredis.Connection) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        reader, writer = connection._reader, connection._writer  # read and written directly
    except AttributeError:
        raise RuntimeError(
            f"redis-py {redis.__version__} no longer keeps a connection's asyncio streams in _reader and "
            "_writer, which apps/devices/node_wire.py reads and writes: adapt it before upgrading"
        ) from None
    if reader is None or writer is None:
        raise RedisConnectionError("the node connection is closed")
    return reader, writer


async def _close(connection: aioredis.Connection | None) -> None:
    if connection is not None:
        with contextlib.suppress(Exception):
            await connection.disconnect(nowait=True)


class NodeSubscription:
    """The connection subscribed to one channel; each message's data goes to ``on_message`` as soon
    as it is read, on the loop's reading task (no task, queue or parser layer in between)."""

    def __init__(self, channel: str, on_message: Callable[[bytes], None]) -> None:
        self.channel = channel
        self.on_message = on_message
        self._connection: aioredis.Connection | None = None
        self._messages = RespReader()

    async def open(self) -> None:
        """Connect and subscribe; returns once Redis confirmed the subscription."""
        connection = await open_connection(client_name=f"{SUBSCRIPTION_CLIENT}:{self.channel}")
        try:
            reader, writer = _streams(connection)
            writer.write(command(b"SUBSCRIBE", self.channel))
            self._messages = RespReader()
            async with asyncio.timeout(settings.DEVICE_REDIS_SOCKET_TIMEOUT):
                while True:
                    data = await reader.read(_READ_SIZE)
                    if not data:
                        raise RedisConnectionError("Redis closed the node connection")
                    if self._deliver(data):
                        break
        except TimeoutError:
            await _close(connection)
            raise RedisTimeoutError("Redis did not confirm a node subscription") from None
        except BaseException:
            await _close(connection)
            raise
        self._connection = connection

    def _deliver(self, data: bytes) -> bool:
        """Hand over the messages in ``data``; True once the subscription is confirmed."""
        subscribed = False
        for value in self._messages.feed(data):
            if isinstance(value, list) and len(value) == 3:
                if value[0] == b"message":
                    self.on_message(value[2])
                elif value[0] == b"subscribe":
                    subscribed = True
            elif isinstance(value, RespError):
                raise ResponseError(value)
        return subscribed

    async def read_forever(self, *, stopping: Callable[[], bool]) -> None:
        """Read and deliver until cancelled; a dropped connection is opened and subscribed again."""
        while not stopping():
            try:
                if self._connection is None:
                    await self.open()
                assert self._connection is not None
                reader, _ = _streams(self._connection)
                data = await reader.read(_READ_SIZE)
                if not data:
                    raise RedisConnectionError("Redis closed the node connection")
                self._deliver(data)
            except asyncio.CancelledError:
                raise
            except Exception:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise asyncio.CancelledError() from None  # a cancellation a library turned into an error
                await self.close()
                if stopping():
                    return
                logger.warning("devices: node receive failed", exc_info=True)
                await asyncio.sleep(0.1)

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        await _close(connection)


@functools.cache
def _script_sha(source: str) -> str:
    return hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()


class Publisher:
    """One loop's connection for ``PUBLISH`` (and the script that finds a device's holder and
    publishes to it): commands are written as they come and the replies, which Redis sends in
    order, resolve the waiting futures in order."""

    def __init__(self) -> None:
        self.client_name = f"{PUBLISHER_CLIENT}:{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._connection: aioredis.Connection | None = None
        self._opening: asyncio.Lock | None = None
        self._waiting: collections.deque[tuple[asyncio.Future, float]] = collections.deque()  # (reply, sent at)
        self._watchdog: asyncio.TimerHandle | None = None
        self._reading: asyncio.Task | None = None

    async def publish(self, channel: str, data: bytes) -> int:
        """Publish ``data`` on ``channel``; how many subscribers heard it."""
        return int(await self.execute(b"PUBLISH", channel, data))

    async def run_script(self, source: str, *, keys: list[str], args: list[Any]) -> Any:
        """Run a Lua script (EVALSHA; EVAL the first time Redis does not know it)."""
        sha = _script_sha(source)
        numbers = [str(len(keys)), *keys, *(arg if isinstance(arg, bytes) else str(arg) for arg in args)]
        try:
            return await self.execute(b"EVALSHA", sha, *numbers)
        except ResponseError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        return await self.execute(b"EVAL", source, *numbers)

    async def execute(self, *args: bytes | str) -> Any:
        """Send one command on this connection (after those already sent) and await its reply."""
        writer = await self._writer()
        loop = asyncio.get_running_loop()
        reply = loop.create_future()
        self._waiting.append((reply, loop.time()))
        writer.write(command(*args))
        if self._watchdog is None:
            self._watchdog = loop.call_later(settings.DEVICE_REDIS_SOCKET_TIMEOUT, self._check_replies)
        if writer.transport.get_write_buffer_size() > _DRAIN_ABOVE:
            await writer.drain()
        return await reply

    def _check_replies(self) -> None:
        """The one deadline of every command waiting on this connection (a timer per command cost
        more than the rest of a publish): when the oldest has waited ``DEVICE_REDIS_SOCKET_TIMEOUT``,
        Redis is not answering this connection, so every waiting command fails and the connection
        is dropped (the next command opens another)."""
        self._watchdog = None
        if not self._waiting:
            return
        loop, timeout = asyncio.get_running_loop(), settings.DEVICE_REDIS_SOCKET_TIMEOUT
        waited = loop.time() - self._waiting[0][1]
        if waited < timeout:
            self._watchdog = loop.call_later(timeout - waited, self._check_replies)
            return
        waiting, self._waiting = self._waiting, collections.deque()
        for reply, _ in waiting:
            if not reply.done():
                reply.set_exception(RedisTimeoutError("Redis did not answer on a node connection"))
        connection, self._connection = self._connection, None
        if connection is not None:
            # Closing its transport ends its reader, which closes it for good.
            with contextlib.suppress(Exception):
                _streams(connection)[1].close()

    async def _writer(self) -> asyncio.StreamWriter:
        writer = self._connection._writer if self._connection is not None else None
        if writer is not None and writer.is_closing():  # dropped: its reader is ending
            self._connection = None
        if self._connection is None:
            if self._opening is None:
                self._opening = asyncio.Lock()
            async with self._opening:
                if self._connection is None:
                    connection = await open_connection(client_name=self.client_name)
                    self._reading = asyncio.get_running_loop().create_task(
                        self._read_replies(connection), name="devices-node-publisher"
                    )
                    self._connection = connection
        return _streams(self._connection)[1]

    async def _read_replies(self, connection: aioredis.Connection) -> None:
        replies = RespReader()
        error: BaseException = RedisConnectionError("Redis closed the node connection")
        try:
            reader, _ = _streams(connection)
            while data := await reader.read(_READ_SIZE):
                for value in replies.feed(data):
                    if not self._waiting or self._connection is not connection:
                        break  # the watchdog gave up on this connection
                    waiter, _ = self._waiting.popleft()
                    if waiter.done():
                        continue  # its publisher gave up waiting
                    if isinstance(value, RespError):
                        waiter.set_exception(ResponseError(value))
                    else:
                        waiter.set_result(value)
        except asyncio.CancelledError:
            error = RedisConnectionError("the node connection was closed")
            raise
        except Exception as exc:
            error = exc if isinstance(exc, RedisConnectionError) else RedisConnectionError(str(exc))
        finally:
            if self._connection is connection:
                self._connection = None
            if self._connection is None:  # else a new connection's commands are waiting
                waiting, self._waiting = self._waiting, collections.deque()
                for waiter, _ in waiting:
                    if not waiter.done():
                        waiter.set_exception(error)
            await _close(connection)

    async def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        task, self._reading = self._reading, None
        connection, self._connection = self._connection, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        await _close(connection)
