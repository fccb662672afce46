"""Where each online device is held, in Redis: read by every tool call instead of the database.

One hash per user (device_id → "channel node last_seen"). A socket writes its entry on hello and
removes it on close (only if it still holds it). Entries of a process that died without cleaning
up are ignored because its node's liveness key is gone; ``locate`` checks that in the same round trip.
"""

from __future__ import annotations

import time
from typing import NamedTuple

from .node import ALIVE_KEY, NODE_CHANNEL
from .realtime_redis import loop_redis

KEY = "devices:where:{user_id}"
_ALIVE_PREFIX = ALIVE_KEY.split("{", 1)[0]
_NODE_CHANNEL_PREFIX = NODE_CHANNEL.split("{", 1)[0]

# KEYS[1] = the user's hash; ARGV[1] = device_id or "" (most recently seen), ARGV[2] = alive prefix.
_FIND_HOLDER = """
local function find_holder()
  local best, best_seen
  local function consider(device, value)
    local channel, node, seen = string.match(value, "^(%S+) (%S+) (%S+)$")
    if channel and redis.call('EXISTS', ARGV[2] .. node) == 1 then
      seen = tonumber(seen)
      if best == nil or seen > best_seen then best, best_seen = {device, channel, node}, seen end
    end
  end
  if ARGV[1] ~= "" then
    local value = redis.call('HGET', KEYS[1], ARGV[1])
    if value then consider(ARGV[1], value) end
  else
    local all = redis.call('HGETALL', KEYS[1])
    for i = 1, #all, 2 do consider(all[i], all[i + 1]) end
  end
  return best
end
"""
_LOCATE = _FIND_HOLDER + "return find_holder()"
# As _LOCATE, then PUBLISH ARGV[4] on the holder node's channel (ARGV[3] = the channel prefix);
# the reply gains the number of subscribers that heard it. One round trip for a remote tool call.
_LOCATE_AND_PUBLISH = (
    _FIND_HOLDER
    + """
local best = find_holder()
if best then best[4] = redis.call('PUBLISH', ARGV[3] .. best[3], ARGV[4]) end
return best
"""
)

# KEYS[1] = the user's hash; ARGV = device_id, channel: delete only if this channel still holds it.
_WITHDRAW = """
local value = redis.call('HGET', KEYS[1], ARGV[1])
if value and string.sub(value, 1, string.len(ARGV[2]) + 1) == ARGV[2] .. " " then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""


_registered: dict[tuple[int, str], object] = {}


def _script(source: str):
    """The script registered on this loop's client (EVALSHA after the first call)."""
    client = loop_redis()
    key = (id(client), source)
    script = _registered.get(key)
    if script is None:
        script = _registered[key] = client.register_script(source)
    return script


class DeviceLocation(NamedTuple):
    device_id: str
    channel: str
    node: str


async def presence_announce(*, user_id: str, device_id: str, channel: str, node: str) -> None:
    await loop_redis().hset(KEY.format(user_id=user_id), device_id, f"{channel} {node} {time.time():.3f}")


async def presence_withdraw(*, user_id: str, device_id: str, channel: str) -> None:
    await _script(_WITHDRAW)(keys=[KEY.format(user_id=user_id)], args=[device_id, channel])


async def presence_publish_to_holder(
    *, user_id: str, device_id: str, payload: str
) -> tuple[DeviceLocation, int] | None:
    """Publish ``payload`` to the node holding the device, in the round trip that finds it.

    Returns where the device is held and how many subscribers heard the message (0: the node
    died after its last heartbeat), or None when the index knows no live holder.
    """
    found = await _script(_LOCATE_AND_PUBLISH)(
        keys=[KEY.format(user_id=user_id)], args=[device_id, _ALIVE_PREFIX, _NODE_CHANNEL_PREFIX, payload]
    )
    if not found:
        return None
    *location, receivers = found
    return DeviceLocation(*(part.decode() if isinstance(part, bytes) else part for part in location)), int(receivers)


async def presence_locate(*, user_id: str, device_id: str | None) -> DeviceLocation | None:
    """The live holder of the device (or of the user's most recently connected one), else None."""
    found = await _script(_LOCATE)(keys=[KEY.format(user_id=user_id)], args=[device_id or "", _ALIVE_PREFIX])
    if not found:
        return None
    return DeviceLocation(*(part.decode() if isinstance(part, bytes) else part for part in found))
