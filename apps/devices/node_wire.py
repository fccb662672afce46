"""The wire of node messages: Redis pub/sub read and written directly rather than through
redis-py's client.

A tool call from another process crosses Redis twice, and redis-py's pure-Python pub/sub reader
and pooled ``PUBLISH`` cost several times what Redis itself does (``bench/device_roundtrip.py``).
Here each node connection is an ``asyncio.Protocol`` (``RespProtocol``) whose bytes are parsed in
``data_received`` and handed on from the loop's own callback, with no stream, reading task or queue
between the socket and the waiting future: a node's channel has one connection whose messages go
straight to a callback (``NodeSubscription``), and each loop has one connection that pipelines
``PUBLISH`` and matches the replies in order (``Publisher``). The URL is read by redis-py's own pool
(host and port or unix socket, ``rediss://`` with its ``ssl_*`` options, user, password, database),
as every other client's; the connection and its RESP2 handshake (``AUTH``, ``SELECT``,
``CLIENT SETNAME``) are made here, through asyncio's public API only.
A command or subscription Redis leaves unanswered fails after ``DEVICE_REDIS_SOCKET_TIMEOUT``.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import hashlib
import logging
import os
import uuid
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from django.conf import settings
from redis.credentials import UsernamePasswordCredentialProvider
from redis.exceptions import AuthenticationError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)


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


class RespProtocol(asyncio.Protocol):
    """One node connection: the RESP values in its bytes go to ``on_value`` as ``data_received``
    parses them, on the loop's own callback (no stream, reading task or queue in between).
    ``closed`` resolves (with the error, if any) when the connection ends."""

    def __init__(self, on_value: Callable[[Any], None]) -> None:
        self.on_value = on_value
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
        self._values = RespReader()
        self._writable: asyncio.Future[None] | None = None  # set while the transport's buffer is full
        self._corked: list[bytes] | None = None  # after this iteration's first write: what waits for its end

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            for value in self._values.feed(data):
                self.on_value(value)
        except Exception as exc:  # an unreadable reply, or a consumer that refuses it: the connection ends
            self.fail(exc)

    def eof_received(self) -> bool:
        return False  # close

    def connection_lost(self, exc: Exception | None) -> None:
        self._end(exc or RedisConnectionError("Redis closed the node connection"))

    def pause_writing(self) -> None:
        self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        writable, self._writable = self._writable, None
        if writable is not None and not writable.done():
            writable.set_result(None)

    def write(self, data: bytes) -> None:
        """Send ``data``: the first command of a loop iteration at once, the ones after it in the same
        iteration (the answers to a socket read's several frames, the calls a batch of replies
        releases) together in one send at its end, instead of a syscall each."""
        if self.transport is None or self.transport.is_closing():
            raise RedisConnectionError("the node connection is closed")
        if self._corked is not None:
            self._corked.append(data)
            return
        self.transport.write(data)
        self._corked = []
        asyncio.get_running_loop().call_soon(self._uncork)

    def _uncork(self) -> None:
        corked, self._corked = self._corked, None
        if corked and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(corked))

    @property
    def writing_paused(self) -> bool:
        return self._writable is not None

    async def drain(self) -> None:
        """Wait while the transport holds more than it wants to (a publisher far ahead of Redis)."""
        if self._writable is not None:
            await self._writable

    def fail(self, error: BaseException) -> None:
        self._end(error)
        if self.transport is not None:
            self.transport.close()

    def _end(self, error: BaseException) -> None:
        if not self.closed.done():
            self.closed.set_result(error)
        writable, self._writable = self._writable, None
        if writable is not None and not writable.done():
            writable.set_exception(RedisConnectionError("the node connection is closed"))
            writable.exception()  # retrieved: nobody may be draining


async def open_connection(*, client_name: str, protocol: RespProtocol, first: list[bytes] | None = None) -> None:
    """Connect ``protocol`` to the cache's Redis in RESP2, authenticated, on its database and named
    ``client_name`` in ``CLIENT LIST``; values reach its ``on_value`` from the first after the handshake.

    The URL (host and port or a unix socket, TLS for ``rediss://`` with its ``ssl_*`` options, user,
    password, database) is read by redis-py's own pool, as every other client's, and only the
    connecting and the handshake are done here. ``first``: commands sent right after the handshake,
    whose replies are waited for too (a ``SUBSCRIBE``'s confirmation)."""
    timeout = settings.DEVICE_REDIS_SOCKET_TIMEOUT
    pool = aioredis.ConnectionPool.from_url(str(settings.CACHES["default"]["LOCATION"]), protocol=2)
    target = pool.make_connection()  # parsed settings only: never connected
    handshake: list[bytes] = []
    authenticating = target.credential_provider is not None or bool(target.username or target.password)
    if authenticating:
        provider = target.credential_provider or UsernamePasswordCredentialProvider(target.username, target.password)
        handshake.append(command(b"AUTH", *(str(part) for part in await provider.get_credentials_async())))
    if target.db:
        handshake.append(command(b"SELECT", str(target.db)))
    handshake.append(command(b"CLIENT", b"SETNAME", client_name))
    commands = [*handshake, *(first or [])]
    loop = asyncio.get_running_loop()
    replies: list[Any] = []
    answered = loop.create_future()
    on_value = protocol.on_value

    def collect(value: Any) -> None:
        if len(replies) < len(commands):
            replies.append(value)
            if len(replies) == len(commands):
                answered.set_result(None)
        else:  # arrived with the last reply of the handshake (a message right after SUBSCRIBE's)
            on_value(value)

    protocol.on_value = collect
    try:
        async with asyncio.timeout(timeout):
            if isinstance(target, aioredis.UnixDomainSocketConnection):
                await loop.create_unix_connection(lambda: protocol, target.path)
            else:
                ssl = target.ssl_context.get() if isinstance(target, aioredis.SSLConnection) else None
                await loop.create_connection(lambda: protocol, target.host, target.port, ssl=ssl)
            protocol.write(b"".join(commands))
            await asyncio.wait([answered, protocol.closed], return_when=asyncio.FIRST_COMPLETED)
    except TimeoutError:
        protocol.fail(RedisConnectionError("closed"))
        raise RedisTimeoutError("Redis did not answer a node connection's handshake") from None
    except OSError as exc:
        protocol.fail(exc)
        raise RedisConnectionError(f"could not connect a node connection to Redis: {exc}") from exc
    except BaseException as exc:
        protocol.fail(exc)
        raise
    if not answered.done():
        raise RedisConnectionError("Redis closed a node connection during its handshake")
    for n, reply in enumerate(replies):
        if isinstance(reply, RespError):
            protocol.fail(RedisConnectionError(reply))
            raise (AuthenticationError if authenticating and n == 0 else ResponseError)(reply)
    protocol.on_value = on_value


class NodeSubscription:
    """The connection subscribed to one channel; each message's data goes to ``on_message`` as soon
    as it is parsed, on the loop's callback for the connection's bytes."""

    def __init__(self, channel: str, on_message: Callable[[bytes], None]) -> None:
        self.channel = channel
        self.on_message = on_message
        self._protocol: RespProtocol | None = None

    async def open(self) -> None:
        """Connect and subscribe; returns once Redis confirmed the subscription."""
        protocol = RespProtocol(self._deliver)
        await open_connection(
            client_name=f"{SUBSCRIPTION_CLIENT}:{self.channel}",
            protocol=protocol,
            first=[command(b"SUBSCRIBE", self.channel)],
        )
        self._protocol = protocol

    def _deliver(self, value: Any) -> None:
        if isinstance(value, list) and len(value) == 3 and value[0] == b"message":
            self.on_message(value[2])
        elif isinstance(value, RespError):
            raise ResponseError(value)

    async def read_forever(self, *, stopping: Callable[[], bool]) -> None:
        """Deliver until cancelled; a dropped connection is opened and subscribed again."""
        while not stopping():
            try:
                if self._protocol is None or self._protocol.closed.done():
                    await self.open()
                assert self._protocol is not None
                error = await asyncio.shield(self._protocol.closed)
                raise error or RedisConnectionError("Redis closed the node connection")
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
        protocol, self._protocol = self._protocol, None
        if protocol is not None:
            protocol.fail(RedisConnectionError("the node connection was closed"))


@functools.cache
def _script_sha(source: str) -> str:
    return hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()


class Publisher:
    """One loop's connection for ``PUBLISH`` (and the script that finds a device's holder and
    publishes to it): commands are written as they come and the replies, which Redis sends in
    order, resolve the waiting futures in order, from the connection's own callback."""

    def __init__(self) -> None:
        self.client_name = f"{PUBLISHER_CLIENT}:{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._protocol: RespProtocol | None = None
        self._opening: asyncio.Lock | None = None
        self._waiting: collections.deque[tuple[asyncio.Future, float]] = collections.deque()  # (reply, sent at)
        self._watchdog: asyncio.TimerHandle | None = None

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
        protocol = self._protocol
        if protocol is None or protocol.closed.done():
            protocol = await self._open()
        reply = self._send(protocol, command(*args))
        await protocol.drain()
        return await reply

    def publish_soon(self, channel: str, data: bytes) -> asyncio.Future | None:
        """``PUBLISH`` written at once, its reply left to the returned future; None (nothing sent)
        while the connection is not open or Redis is behind on reading it: then ``publish``."""
        protocol = self._protocol
        if protocol is None or protocol.closed.done() or protocol.writing_paused:
            return None
        return self._send(protocol, command(b"PUBLISH", channel, data))

    def _send(self, protocol: RespProtocol, data: bytes) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        reply = loop.create_future()
        protocol.write(data)
        self._waiting.append((reply, loop.time()))
        if self._watchdog is None:
            self._watchdog = loop.call_later(settings.DEVICE_REDIS_SOCKET_TIMEOUT, self._check_replies)
        return reply

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
        protocol, self._protocol = self._protocol, None
        self._fail_waiting(RedisTimeoutError("Redis did not answer on a node connection"))
        if protocol is not None:
            protocol.fail(RedisConnectionError("the node connection was given up"))

    def _fail_waiting(self, error: BaseException) -> None:
        waiting, self._waiting = self._waiting, collections.deque()
        for reply, _ in waiting:
            if not reply.done():
                reply.set_exception(error)

    async def _open(self) -> RespProtocol:
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            protocol = self._protocol
            if protocol is None or protocol.closed.done():
                protocol = RespProtocol(lambda value: None)
                protocol.on_value = functools.partial(self._replied, protocol)
                await open_connection(client_name=self.client_name, protocol=protocol)
                protocol.closed.add_done_callback(functools.partial(self._lost, protocol))
                self._protocol = protocol
        return protocol

    def _replied(self, protocol: RespProtocol, value: Any) -> None:
        if self._protocol is not protocol or not self._waiting:
            return  # the watchdog gave up on this connection
        waiter, _ = self._waiting.popleft()
        if waiter.done():
            return  # its publisher gave up waiting
        if isinstance(value, RespError):
            waiter.set_exception(ResponseError(value))
        else:
            waiter.set_result(value)

    def _lost(self, protocol: RespProtocol, closed: asyncio.Future) -> None:
        if self._protocol is not protocol:
            return  # given up already: a new connection's commands may be waiting
        self._protocol = None
        error = closed.result()
        self._fail_waiting(error if isinstance(error, RedisConnectionError) else RedisConnectionError(str(error)))

    async def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        protocol, self._protocol = self._protocol, None
        if protocol is not None:
            protocol.fail(RedisConnectionError("the node connection was closed"))
        self._fail_waiting(RedisConnectionError("the node connection was closed"))
