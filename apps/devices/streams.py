"""Resumable request streams: numbered frames, kept in Redis, replayed to any socket of the user.

Every frame of a request (``floating_domain``, ``stream_start``, ``stream_text``, ``error``,
``stream_end``) goes through its :class:`RequestStream`, which numbers it (``seq`` from 1),
appends it to the request's log and delivers it to the sockets attached to the request. One
writer task per request does all three in order, so a socket that attaches with
``resume {after_seq}`` gets the log after ``after_seq`` and then the live frames, with no gap and
no duplicate. While a socket is busy, queued ``stream_text`` frames are merged into one; when it
is idle, a frame leaves at once.

The request outlives its socket: it keeps running and logging. The log is written to Redis in
batches and kept ``DEVICE_STREAM_RETAIN_SECONDS`` after ``stream_end`` (at most
``DEVICE_STREAM_RETAIN_PER_USER`` requests per user), so a socket that reconnects (to any server
process) can still resume it; the process running it is found through its node. A log evicted by
that bound while its request runs is gone for good (``stream_expired`` once the request ended),
never replayed from the middle. Log entries are sealed with the Redis keys (``redis_seal``): the
chat message and the answer's text never rest in Redis (or its AOF) as plaintext.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
from typing import Any, NamedTuple, Protocol, cast

from channels.exceptions import ChannelFull
from django.conf import settings

from apps.core.encryption import redis_seal, redis_unseal

from .channel_layer import loop_layer
from .error_codes import DevicesErrorCode
from .errors import DeviceDisconnectedError
from .frames import outgoing_json
from .node import loop_node, node_alive, node_publish, register_message_handler
from .realtime_redis import loop_redis, loop_script

logger = logging.getLogger(__name__)

LOG_KEY = "devices:stream:{user_id}:{request_id}:log"
META_KEY = "devices:stream:{user_id}:{request_id}:meta"
USER_KEY = "devices:streams:{user_id}"
MSG_STREAM_ATTACH = "devices.stream_attach"
MSG_STREAM_FRAME = "devices.stream_frame"
# How long a running request's log outlives a silent process, before the end sets the short retention.
RUNNING_TTL_SECONDS = 3600
PERSIST_DELAY_SECONDS = 0.05

# Appends a batch of frames to a request's log, only if the log still holds exactly the frames this
# stream wrote before: a log evicted by the per-user bound (or expired) while its request ran is
# never re-created from the middle, which a resume would replay with a gap. Returns 0 when refused.
# KEYS: log, meta. ARGV: frames persisted so far, TTL, user_id, node, ended, then the new frames.
_APPEND = """
if redis.call('LLEN', KEYS[1]) ~= tonumber(ARGV[1]) then return 0 end
for i = 6, #ARGV, 1000 do
  redis.call('RPUSH', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
redis.call('HSET', KEYS[2], 'user_id', ARGV[3], 'node', ARGV[4], 'ended', ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return 1
"""


class FrameTarget(Protocol):
    """A socket a stream delivers to (the consumer)."""

    async def send_text(self, text: str) -> None: ...


class _Attach(NamedTuple):
    target: FrameTarget | str  # a local socket, or a remote socket's channel name
    after_seq: int


_streams: dict[tuple[str, str], RequestStream] = {}


def stream_get(*, user_id: str, request_id: str) -> RequestStream | None:
    """The running (or still finishing) stream of this process, never another user's."""
    return _streams.get((user_id, request_id))


async def streams_wait(timeout: float) -> int:  # noqa: ASYNC109
    """Wait until every stream of this process wrote its last frame (or ``timeout``); how many are left."""
    writers = [stream._writer for stream in _streams.values()]
    if writers:
        await asyncio.wait(writers, timeout=timeout)
    return len(_streams)


def streams_cancel_all() -> int:
    """Stop every request still running here (a drain past its deadline); returns how many.

    Each gets an error saying why before its handler ends the stream as on ``cancel``.
    """
    cancelled = 0
    for stream in list(_streams.values()):
        if stream.task is None or stream.task.done() or stream._finished:
            continue
        stream.emit(_cut_error(stream.request_id))
        stream.task.cancel()
        cancelled += 1
    return cancelled


class RequestStream:
    def __init__(self, *, user_id: str, request_id: str, node: str) -> None:
        self.user_id = user_id
        self.request_id = request_id
        self.node = node
        self.seq = 0
        self.log: list[str] = []
        self.task: asyncio.Task | None = None  # the handler running the request
        self._queue: collections.deque[dict[str, Any] | _Attach] = collections.deque()
        self._local: list[FrameTarget] = []
        self._remote: list[str] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._finished = False
        self._persisted = 0
        self._evicted = False  # its Redis log was dropped while it ran: no longer resumable from Redis
        self._persist_task: asyncio.Task | None = None
        self.closed = False
        self._writer = asyncio.get_running_loop().create_task(self._write(), name=f"stream-{request_id}")

    @property
    def keys(self) -> tuple[str, str]:
        ids = {"user_id": self.user_id, "request_id": self.request_id}
        return LOG_KEY.format(**ids), META_KEY.format(**ids)

    # --- producers -------------------------------------------------------------------------

    def emit(self, frame: dict[str, Any]) -> None:
        """Queue a frame of this request; it is numbered and sent by the writer, in order."""
        if self._finished:
            raise RuntimeError("the request's stream is finished")
        self._push(dict(frame))

    async def drain(self) -> None:
        """Wait until every queued frame was numbered, logged and handed to the sockets."""
        await self._idle.wait()

    def attach(self, target: FrameTarget | str, after_seq: int) -> None:
        self._push(_Attach(target, after_seq))

    def detach(self, target: FrameTarget) -> None:
        with contextlib.suppress(ValueError):
            self._local.remove(target)

    def finish(self) -> None:
        """The handler is done: the writer logs what is left, persists the end and unregisters."""
        self._finished = True
        self._wake.set()

    def _push(self, item: dict[str, Any] | _Attach) -> None:
        self._queue.append(item)
        self._idle.clear()
        self._wake.set()

    # --- the writer ------------------------------------------------------------------------

    async def _write(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._queue:
                    item = self._queue.popleft()
                    if isinstance(item, _Attach):
                        await self._attach(item)
                    else:
                        await self._deliver(self._number(self._coalesce(item)))
                if self._finished and not self._queue:
                    break
                self._idle.set()
                self._schedule_persist()
            with contextlib.suppress(Exception):
                if self._persist_task is not None:
                    await self._persist_task
                await self._persist(final=True)
        except Exception:
            logger.exception("devices: stream %s writer failed", self.request_id)
        finally:
            self.closed = True
            if _streams.get((self.user_id, self.request_id)) is self:
                del _streams[(self.user_id, self.request_id)]
            # Resumes that arrived while the end was being persisted still get the whole log.
            with contextlib.suppress(Exception):
                while self._queue:
                    item = self._queue.popleft()
                    if isinstance(item, _Attach):
                        await self._attach(item)
            self._idle.set()

    def _coalesce(self, frame: dict[str, Any]) -> dict[str, Any]:
        if frame.get("type") != "stream_text":
            return frame
        chunks = [frame["chunk"]]
        while self._queue and isinstance(self._queue[0], dict) and self._queue[0].get("type") == "stream_text":
            # The loop condition saw a dict at the head; mypy cannot carry that to popleft().
            chunks.append(cast("dict[str, Any]", self._queue.popleft())["chunk"])
        if len(chunks) > 1:
            frame = {**frame, "chunk": "".join(chunks)}
        return frame

    def _number(self, frame: dict[str, Any]) -> str:
        self.seq += 1
        frame["seq"] = self.seq
        try:
            text = outgoing_json(frame)
        except ValueError:
            # A frame the client was not promised is a server bug; the client learns of a failure.
            logger.exception("devices: invalid outgoing frame in request %s", self.request_id)
            text = outgoing_json(
                {
                    "type": "error",
                    "request_id": self.request_id,
                    "seq": self.seq,
                    "code": DevicesErrorCode.INTERNAL_ERROR,
                    "message": "The server produced an invalid frame.",
                }
            )
        self.log.append(text)
        return text

    async def _deliver(self, text: str) -> None:
        for target in list(self._local):
            try:
                await target.send_text(text)
            except DeviceDisconnectedError:
                self.detach(target)
        for channel in list(self._remote):
            await self._send_remote(channel, text)

    async def _send_remote(self, channel: str, text: str) -> None:
        try:
            await loop_layer().send(channel, {"type": MSG_STREAM_FRAME, "user_id": self.user_id, "text": text})
        except ChannelFull:
            logger.warning("devices: resumed socket's channel is full; it stops receiving %s", self.request_id)
            with contextlib.suppress(ValueError):
                self._remote.remove(channel)

    async def _attach(self, item: _Attach) -> None:
        backlog = self.log[max(item.after_seq, 0) :]
        if isinstance(item.target, str):
            for text in backlog:
                await self._send_remote(item.target, text)
            if item.target not in self._remote:
                self._remote.append(item.target)
            return
        try:
            for text in backlog:
                await item.target.send_text(text)
        except DeviceDisconnectedError:
            return
        if item.target not in self._local:
            self._local.append(item.target)

    # --- persistence -----------------------------------------------------------------------

    def _schedule_persist(self) -> None:
        if self._persist_task is None or self._persist_task.done():
            self._persist_task = asyncio.get_running_loop().create_task(self._persist_soon())

    async def _persist_soon(self) -> None:
        await asyncio.sleep(PERSIST_DELAY_SECONDS)
        try:
            await self._persist(final=False)
        except Exception:
            logger.warning("devices: could not persist stream %s", self.request_id, exc_info=True)

    async def _persist(self, *, final: bool) -> None:
        if self._evicted:
            return
        new = self.log[self._persisted :]
        ttl = settings.DEVICE_STREAM_RETAIN_SECONDS if final else RUNNING_TTL_SECONDS
        appended = await loop_script(_APPEND)(
            keys=list(self.keys),
            args=[self._persisted, int(ttl), self.user_id, self.node, "1" if final else "0", *map(redis_seal, new)],
        )
        if not appended:
            self._evicted = True
            logger.info("devices: stream %s was evicted while running; it is no longer resumable", self.request_id)
            return
        self._persisted += len(new)


async def stream_open(*, user_id: str, request_id: str) -> RequestStream:
    """Register a new request's stream (the caller checked that none with this id runs here)."""
    node = await loop_node()
    stream = RequestStream(user_id=user_id, request_id=request_id, node=node.name)
    _streams[(user_id, request_id)] = stream
    try:
        await _remember_for_user(user_id=user_id, request_id=request_id, node=node.name)
    except Exception:
        logger.warning("devices: could not record stream %s", request_id, exc_info=True)
    return stream


async def _remember_for_user(*, user_id: str, request_id: str, node: str) -> None:
    """Announce the request (its meta names the process running it) and keep at most
    DEVICE_STREAM_RETAIN_PER_USER logs per user; the oldest go first."""
    redis = loop_redis()
    user_key = USER_KEY.format(user_id=user_id)
    meta_key = META_KEY.format(user_id=user_id, request_id=request_id)
    loop = asyncio.get_running_loop()
    async with redis.pipeline(transaction=True) as pipe:
        pipe.zadd(user_key, {request_id: loop.time() + 1e9})  # monotonic order within the process
        pipe.zcard(user_key)
        pipe.expire(user_key, RUNNING_TTL_SECONDS)
        # Before the first frame, not with the first batch of the log: a device that moves right after
        # its first frames (a deploy's drain) resumes elsewhere before that batch is written, and the
        # other process finds the request, and the process to relay it from, only through this meta.
        pipe.hset(meta_key, mapping={"user_id": user_id, "node": node, "ended": "0"})
        pipe.expire(meta_key, RUNNING_TTL_SECONDS)
        _, count, *_ = await pipe.execute()
    excess = int(count) - settings.DEVICE_STREAM_RETAIN_PER_USER
    if excess > 0:
        # redis-py types zpopmin for every count and protocol; with a count it is (member, score) pairs.
        dropped = cast("list[tuple[bytes | str, float]]", await redis.zpopmin(user_key, excess))
        keys = []
        for member, _score in dropped:
            old = _text(member)
            keys += [LOG_KEY.format(user_id=user_id, request_id=old), META_KEY.format(user_id=user_id, request_id=old)]
        if keys:
            await redis.delete(*keys)


async def stream_resume(*, target: Any, user_id: str, request_id: str, after_seq: int) -> bool:
    """Attach ``target`` (a consumer with ``send_text`` and ``channel_name``) to a request's stream.

    Returns False when the request is unknown, expired or another user's (``stream_expired``).
    """
    stream = stream_get(user_id=user_id, request_id=request_id)
    if stream is not None and not stream.closed:
        stream.attach(target, after_seq)
        return True
    redis = loop_redis()
    log_key = LOG_KEY.format(user_id=user_id, request_id=request_id)
    raw_meta = await redis.hgetall(META_KEY.format(user_id=user_id, request_id=request_id))
    meta = {_text(k): _text(v) for k, v in raw_meta.items()}
    if not meta or meta.get("user_id") != user_id:
        return False
    node = await loop_node()
    owner = meta.get("node", "")
    if meta.get("ended") != "1" and owner and owner != node.name and await node_alive(owner):
        attach = {
            "type": MSG_STREAM_ATTACH,
            "user_id": user_id,
            "request_id": request_id,
            "after_seq": after_seq,
            "channel": target.channel_name,
        }
        if await node_publish(owner, attach):
            return True
        # The owner died between the two round trips: replay what its log holds.
    for entry in await redis.lrange(log_key, max(after_seq, 0), -1):
        await target.send_text(_log_entry(entry))
    if meta.get("ended") != "1" and owner != node.name:
        # No live process runs it any more (its own died before the end): the answer was cut, and
        # the device must hear so rather than wait for a ``stream_end`` that never comes.
        await target.send_text(json.dumps(_cut_error(request_id)))
    return True


def _cut_error(request_id: str) -> dict[str, Any]:
    return {
        "type": "error",
        "request_id": request_id,
        "code": DevicesErrorCode.SERVER_RESTARTING,
        "message": "The server restarted before this request finished; please send it again.",
    }


async def _on_remote_attach(message: dict[str, Any]) -> None:
    """Another process's socket resumes a request this process runs (or just finished)."""
    user_id, request_id = message["user_id"], message["request_id"]
    stream = stream_get(user_id=user_id, request_id=request_id)
    if stream is not None and not stream.closed:
        stream.attach(message["channel"], int(message["after_seq"]))
        return
    log_key = LOG_KEY.format(user_id=user_id, request_id=request_id)
    for entry in await loop_redis().lrange(log_key, max(int(message["after_seq"]), 0), -1):
        await loop_layer().send(
            message["channel"], {"type": MSG_STREAM_FRAME, "user_id": user_id, "text": _log_entry(entry)}
        )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _log_entry(value: bytes | str) -> str:
    """A frame of the Redis log, unsealed (entries are written sealed by ``_persist``)."""
    return redis_unseal(value)


register_message_handler(MSG_STREAM_ATTACH, _on_remote_attach)


def detach_everywhere(target: FrameTarget) -> None:
    """A socket closed: stop delivering to it (its requests keep running and logging)."""
    for stream in list(_streams.values()):
        stream.detach(target)
