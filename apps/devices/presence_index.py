"""Where each online device is held, in Redis: read by every tool call instead of the database.

One hash per user (device_id → "channel node last_seen"). A socket writes its entry on hello and
removes it on close (only if it still holds it). Entries of a process that died without cleaning
up are ignored because its node's liveness key is gone; ``locate`` checks that in the same round trip
and says so (``stale``): such a device is offline until it says hello again elsewhere.

A caller remembers for ``DEVICE_HOLDER_CACHE_SECONDS`` which node held a device it called
(``holder_cached``), and publishes the next call straight to that node's channel.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, NamedTuple, TypeVar

from django.conf import settings

from apps.core.group_commit import loop_local

from .node import ALIVE_KEY, NODE_CHANNEL
from .realtime_redis import loop_publisher, loop_script

KEY = "devices:where:{user_id}"
_ALIVE_PREFIX = ALIVE_KEY.split("{", 1)[0]
_NODE_CHANNEL_PREFIX = NODE_CHANNEL.split("{", 1)[0]

T = TypeVar("T")

# KEYS[1] = the user's hash; ARGV[1] = device_id or "" (most recently seen), ARGV[2] = alive prefix.
# find_holder() returns the live holder {device, channel, node} or nil, and whether an entry of a
# holder whose process is gone (no liveness key) was seen.
_FIND_HOLDER = """
local function find_holder()
  local best, best_seen, stale = nil, nil, false
  local function consider(device, value)
    local channel, node, seen = string.match(value, "^(%S+) (%S+) (%S+)$")
    if not channel then return end
    if redis.call('EXISTS', ARGV[2] .. node) == 0 then stale = true return end
    seen = tonumber(seen)
    if best == nil or seen > best_seen then best, best_seen = {device, channel, node}, seen end
  end
  if ARGV[1] ~= "" then
    local value = redis.call('HGET', KEYS[1], ARGV[1])
    if value then consider(ARGV[1], value) end
  else
    local all = redis.call('HGETALL', KEYS[1])
    for i = 1, #all, 2 do consider(all[i], all[i + 1]) end
  end
  return best, stale
end
"""
# Replies {device, channel, node, heard}: heard = -1 for "no live holder, only stale entries".
_LOCATE = (
    _FIND_HOLDER
    + """
local best, stale = find_holder()
if best then best[4] = 0 return best end
if stale then return {"", "", "", -1} end
return nil
"""
)
# As _LOCATE, but PUBLISH ARGV[4] on the live holder's node channel (ARGV[3] = the channel prefix)
# and reply how many subscribers heard it: one round trip for a remote tool call.
_LOCATE_AND_PUBLISH = (
    _FIND_HOLDER
    + """
local best, stale = find_holder()
if best then best[4] = redis.call('PUBLISH', ARGV[3] .. best[3], ARGV[4]) return best end
if stale then return {"", "", "", -1} end
return nil
"""
)

# KEYS[i] = a user's hash; ARGV[2i-1], ARGV[2i] = device_id, channel: each entry is deleted only if
# that channel still holds it (its value starts with "<channel> ": this index's and the capability
# index's both do). Many withdrawals in one round trip (see _Withdrawals).
_WITHDRAW_MANY = """
local removed = 0
for i, key in ipairs(KEYS) do
  local device, channel = ARGV[2 * i - 1], ARGV[2 * i]
  local value = redis.call('HGET', key, device)
  if value and string.sub(value, 1, string.len(channel) + 1) == channel .. " " then
    removed = removed + redis.call('HDEL', key, device)
  end
end
return removed
"""


class DeviceLocation(NamedTuple):
    device_id: str
    channel: str
    node: str


class Lookup(NamedTuple):
    """What the index says about a device (or the user's most recently connected one)."""

    location: DeviceLocation | None  # its live holder, if any
    heard: int = 0  # subscribers that heard a published call (0: the holder's node stopped listening)
    stale: bool = False  # no live holder, but an entry of a holder whose process is gone
    remembered: bool = False  # the location came from this process's memory, not the index


def _lookup(found: list | None) -> Lookup:
    if not found:
        return Lookup(None)
    device_id, channel, node, heard = (part.decode() if isinstance(part, bytes) else part for part in found)
    if int(heard) < 0:
        return Lookup(None, stale=True)
    return Lookup(DeviceLocation(device_id, channel, node), heard=int(heard))


# KEYS[i] = a user's hash; ARGV[1] = the node's liveness key, ARGV[2] = its TTL (ms); ARGV[2i+1],
# ARGV[2i+2] = device_id, entry. Many announcements of one node in one round trip (see _Batched).
_ANNOUNCE_MANY = """
for i, key in ipairs(KEYS) do
  redis.call('HSET', key, ARGV[2 * i + 1], ARGV[2 * i + 2])
end
redis.call('SET', ARGV[1], '1', 'PX', ARGV[2])
return #KEYS
"""
# Announcements or withdrawals sent in one script call at most; a storm of thousands goes in a few
# round trips.
BATCH = 500


async def presence_announce(*, user_id: str, device_id: str, channel: str, node: str) -> None:
    """Record the device's holder, and that the holder's node is alive (after a Redis flush or
    restart, its key would otherwise wait for the next heartbeat and the entry would look stale).
    Batched with the loop's other announcements: a reconnect storm's hellos share the round trips."""
    entry = f"{channel} {node} {time.time():.3f}"
    holder_forget(user_id=user_id, device_id=device_id)  # a caller on another loop of this process
    await _announcements().add((KEY.format(user_id=user_id), device_id, entry, node))


async def _announce_many(announcements: list[tuple[str, str, str, str]]) -> None:
    by_node: dict[str, list[tuple[str, str, str, str]]] = {}
    for announcement in announcements:
        by_node.setdefault(announcement[3], []).append(announcement)
    ttl = int(settings.DEVICE_NODE_TTL * 1000)
    for node, entries in by_node.items():
        await loop_script(_ANNOUNCE_MANY)(
            keys=[key for key, _, _, _ in entries],
            args=[
                ALIVE_KEY.format(node=node),
                ttl,
                *(part for _, device, entry, _ in entries for part in (device, entry)),
            ],
        )


async def _withdraw_many(withdrawals: list[tuple[str, str, str]]) -> None:
    await loop_script(_WITHDRAW_MANY)(
        keys=[key for key, _, _ in withdrawals],
        args=[part for _, device_id, channel in withdrawals for part in (device_id, channel)],
    )


class _Batched(Generic[T]):
    """This loop's index writes of one kind waiting to be sent: every socket that asks in the same
    tick, or while the previous batch is on its way, joins one script call (like the presence
    flusher's one UPDATE), instead of a round trip and a pooled connection each."""

    def __init__(self, send: Callable[[list[T]], Awaitable[None]]) -> None:
        self.send = send
        self.waiting: list[tuple[T, asyncio.Future[None]]] = []
        self.sending = False

    def add(self, item: T) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting.append((item, done))
        if not self.sending:
            self.sending = True
            _keep(asyncio.ensure_future(self._send()))
        return done

    async def _send(self) -> None:
        try:
            await asyncio.sleep(0)  # the rest of this tick's writes join the batch
            while self.waiting:
                batch, self.waiting = self.waiting[:BATCH], self.waiting[BATCH:]
                try:
                    await self.send([item for item, _ in batch])
                except Exception as exc:  # each waiting socket reports it
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                    continue
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)
        finally:
            self.sending = False
            for _, done in self.waiting:  # cancelled with entries still waiting: the loop is ending
                if not done.done():
                    done.cancel()
            self.waiting = []


_announcements = loop_local(lambda: _Batched(_announce_many))
_withdrawals = loop_local(lambda: _Batched(_withdraw_many))
_sending: set[asyncio.Future] = set()


def _keep(task: asyncio.Future) -> None:
    _sending.add(task)
    task.add_done_callback(_sending.discard)


async def entry_withdraw(*, key: str, device_id: str, channel: str) -> None:
    """Remove ``device_id`` from the hash ``key`` if its value still names ``channel`` first (batched
    with the loop's other withdrawals); the capability index (``capabilities``) withdraws this way too."""
    await _withdrawals().add((key, device_id, channel))


async def presence_withdraw(*, user_id: str, device_id: str, channel: str) -> None:
    """Remove the device's entry if ``channel`` still holds it (batched with the loop's other withdrawals)."""
    holder_forget(user_id=user_id, device_id=device_id)
    await entry_withdraw(key=KEY.format(user_id=user_id), device_id=device_id, channel=channel)


# Where this process last found each device it called: (user_id, device_id) → (location, until, on
# the monotonic clock). Never trusted blindly, so a memory that went stale loses no call: a node that
# stopped listening hears nothing, and the index is asked at once; a node that no longer holds the
# device says so (``not_held``) before the call reaches any socket, and the caller asks the index and
# sends once more (services._remote_call). Plain dict operations: the process's loops share it.
_holders: dict[tuple[str, str], tuple[DeviceLocation, float]] = {}
HOLDERS_MAX = 10_000  # devices remembered per process; past it the oldest half is forgotten


def holder_cached(*, user_id: str, device_id: str) -> DeviceLocation | None:
    """The node this process last found holding the device, if that is recent enough to try first."""
    remembered = _holders.get((user_id, device_id))
    if remembered is None:
        return None
    location, until = remembered
    if time.monotonic() >= until:
        _holders.pop((user_id, device_id), None)
        return None
    return location


def holder_remember(*, user_id: str, device_id: str, location: DeviceLocation) -> None:
    seconds = settings.DEVICE_HOLDER_CACHE_SECONDS
    if seconds <= 0 or not location.node:
        return
    if len(_holders) >= HOLDERS_MAX:
        for key in list(_holders)[: HOLDERS_MAX // 2]:  # insertion order: the oldest first
            _holders.pop(key, None)
    _holders[(user_id, device_id)] = (location, time.monotonic() + seconds)


def holder_forget(*, user_id: str, device_id: str) -> None:
    _holders.pop((user_id, device_id), None)


def holders_forget_all() -> None:
    _holders.clear()


async def presence_publish_to_holder(
    *, user_id: str, device_id: str, payload: bytes, remembered: bool = True
) -> Lookup:
    """Publish ``payload`` to the node holding the device, in the round trip that finds it: a plain
    ``PUBLISH`` to the node this process remembers (``remembered``), else the index's locate script."""
    # On the node messages' connection: what the holder hears is sent without the pool's overhead.
    publisher = loop_publisher()
    location = holder_cached(user_id=user_id, device_id=device_id) if remembered else None
    if location is not None:
        heard = await publisher.publish(_NODE_CHANNEL_PREFIX + location.node, payload)
        if heard:
            return Lookup(location, heard=heard, remembered=True)
        # Nobody heard it (the node stopped listening): the index knows better, and sending again is safe.
    lookup = _lookup(
        await publisher.run_script(
            _LOCATE_AND_PUBLISH,
            keys=[KEY.format(user_id=user_id)],
            args=[device_id, _ALIVE_PREFIX, _NODE_CHANNEL_PREFIX, payload],
        )
    )
    if lookup.location is not None and lookup.heard:
        holder_remember(user_id=user_id, device_id=device_id, location=lookup.location)
    else:
        holder_forget(user_id=user_id, device_id=device_id)
    return lookup


async def presence_locate(*, user_id: str, device_id: str | None) -> Lookup:
    """The live holder of the device (or of the user's most recently connected one)."""
    return _lookup(
        await loop_script(_LOCATE)(keys=[KEY.format(user_id=user_id)], args=[device_id or "", _ALIVE_PREFIX])
    )
