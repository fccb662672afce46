"""Where each online device is held, in Redis: read by every tool call instead of the database.

One hash per user (device_id → "channel node last_seen"). A socket writes its entry on hello and
removes it on close (only if it still holds it). Entries of a process that died without cleaning
up are ignored because its node's liveness key is gone; ``locate`` checks that in the same round trip
and says so (``stale``): such a device is offline until it says hello again elsewhere.
"""

from __future__ import annotations

import time
from typing import NamedTuple

from django.conf import settings

from .node import ALIVE_KEY, NODE_CHANNEL
from .realtime_redis import loop_redis, loop_script

KEY = "devices:where:{user_id}"
_ALIVE_PREFIX = ALIVE_KEY.split("{", 1)[0]
_NODE_CHANNEL_PREFIX = NODE_CHANNEL.split("{", 1)[0]

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

# KEYS[1] = the user's hash; ARGV[1] = alive prefix. Replies {entries, device...}: how many entries the
# hash holds, then each device whose holder's process is alive.
_HELD = """
local all = redis.call('HGETALL', KEYS[1])
local reply = {#all / 2}
for i = 1, #all, 2 do
  local node = string.match(all[i + 1], "^%S+ (%S+) %S+$")
  if node and redis.call('EXISTS', ARGV[1] .. node) == 1 then table.insert(reply, all[i]) end
end
return reply
"""

# KEYS[1] = the user's hash; ARGV = device_id, channel: delete only if this channel still holds it.
_WITHDRAW = """
local value = redis.call('HGET', KEYS[1], ARGV[1])
if value and string.sub(value, 1, string.len(ARGV[2]) + 1) == ARGV[2] .. " " then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
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


def _lookup(found: list | None) -> Lookup:
    if not found:
        return Lookup(None)
    device_id, channel, node, heard = (part.decode() if isinstance(part, bytes) else part for part in found)
    if int(heard) < 0:
        return Lookup(None, stale=True)
    return Lookup(DeviceLocation(device_id, channel, node), heard=int(heard))


async def presence_announce(*, user_id: str, device_id: str, channel: str, node: str) -> None:
    """Record the device's holder, and that the holder's node is alive (after a Redis flush or
    restart, its key would otherwise wait for the next heartbeat and the entry would look stale)."""
    async with loop_redis().pipeline(transaction=False) as pipe:
        pipe.hset(KEY.format(user_id=user_id), device_id, f"{channel} {node} {time.time():.3f}")
        pipe.set(ALIVE_KEY.format(node=node), "1", px=int(settings.DEVICE_NODE_TTL * 1000))
        await pipe.execute()


async def presence_withdraw(*, user_id: str, device_id: str, channel: str) -> None:
    await loop_script(_WITHDRAW)(keys=[KEY.format(user_id=user_id)], args=[device_id, channel])


async def presence_publish_to_holder(*, user_id: str, device_id: str, payload: str) -> Lookup:
    """Publish ``payload`` to the node holding the device, in the round trip that finds it."""
    return _lookup(
        await loop_script(_LOCATE_AND_PUBLISH)(
            keys=[KEY.format(user_id=user_id)], args=[device_id, _ALIVE_PREFIX, _NODE_CHANNEL_PREFIX, payload]
        )
    )


async def presence_locate(*, user_id: str, device_id: str | None) -> Lookup:
    """The live holder of the device (or of the user's most recently connected one)."""
    return _lookup(
        await loop_script(_LOCATE)(keys=[KEY.format(user_id=user_id)], args=[device_id or "", _ALIVE_PREFIX])
    )


class HeldDevices(NamedTuple):
    device_ids: frozenset[str]  # devices whose holder's process is alive
    entries: int  # entries in the index, live or not (0: the index knows nothing of this user)


async def presence_held_devices(*, user_id: str) -> HeldDevices:
    """Which of the user's devices have a live holder, in one round trip."""
    reply = await loop_script(_HELD)(keys=[KEY.format(user_id=user_id)], args=[_ALIVE_PREFIX])
    entries, *devices = reply
    return HeldDevices(frozenset(d.decode() if isinstance(d, bytes) else d for d in devices), int(entries))
