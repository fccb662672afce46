"""Negotiated socket capabilities: which frames added after the seed protocol a socket may get.

A ``device_hello`` without ``capabilities`` is a seed client: it gets the seed's frames only. A
hello with it is answered by ``device_welcome {protocol, capabilities}``, the intersection of what
it asked for and what this server offers; a frame declared with a capability
(``frames.register_outgoing_frame(model, capability=...)``) is only ever sent to a socket that
negotiated it (the consumer drops it otherwise).

The negotiated set of each socket is kept in Redis beside the presence index (one hash per user:
device_id → "channel cap,cap"), written at hello and removed at close, so a sender in any process
(a Celery worker, another web process) finds the user's capable sockets: see
``services.user_frame_broadcast``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from .presence_index import KEY as PRESENCE_KEY
from .presence_index import entry_withdraw
from .realtime_redis import loop_redis

# The seed's protocol is 1; 2 adds the negotiation itself (device_welcome) and capability frames.
PROTOCOL_VERSION = 2

KEY = "devices:caps:{user_id}"

_offered: set[str] = set()


def register_capability(name: str) -> None:
    """Offer ``name`` to clients (called by ``register_outgoing_frame`` or an app's ``ready``)."""
    _offered.add(name)


def offered_capabilities() -> frozenset[str]:
    return frozenset(_offered)


def capabilities_negotiate(requested: Iterable[str]) -> list[str]:
    """What the server will use: the requested capabilities it offers, in the client's order, once
    each (an unknown one is ignored, never an error: a newer client may ask for more)."""
    seen: list[str] = []
    for name in requested:
        if name in _offered and name not in seen:
            seen.append(name)
    return seen


def capability_set(negotiated: Iterable[str]) -> frozenset[str]:
    """The set a socket keeps of what it negotiated: one shared set per combination (a few, as each
    is a subset of what the server offers), not a 216-byte set per socket."""
    key = frozenset(negotiated)
    return _capability_sets.setdefault(key, key)


_capability_sets: dict[frozenset[str], frozenset[str]] = {}


class CapableSocket(NamedTuple):
    device_id: str
    channel: str
    capabilities: frozenset[str]


async def capabilities_announce(*, user_id: str, device_id: str, channel: str, capabilities: list[str]) -> None:
    """Record what the socket on ``channel`` negotiated (after its hello)."""
    await loop_redis().hset(KEY.format(user_id=user_id), device_id, f"{channel} {','.join(capabilities)}")


async def capabilities_withdraw(*, user_id: str, device_id: str, channel: str) -> None:
    """Forget the socket's capabilities, unless a newer socket of the device already took its place
    (the entry starts with the holder's channel, as a presence entry does: one withdraw script for both)."""
    await entry_withdraw(key=KEY.format(user_id=user_id), device_id=device_id, channel=channel)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def capable_sockets(*, user_id: str, capability: str) -> list[CapableSocket]:
    """The user's sockets that negotiated ``capability`` and still hold their device.

    An entry counts only while the presence index names the same channel for the device, so the
    leftovers of a socket that went away without cleaning up are never addressed.
    """
    async with loop_redis().pipeline(transaction=False) as pipe:
        pipe.hgetall(KEY.format(user_id=user_id))
        pipe.hgetall(PRESENCE_KEY.format(user_id=user_id))
        declared, where = await pipe.execute()
    holders = {_text(device): _text(value).split(" ", 1)[0] for device, value in where.items()}
    found = []
    for raw_device, raw_value in declared.items():
        device_id = _text(raw_device)
        channel, _, names = _text(raw_value).partition(" ")
        capabilities = frozenset(filter(None, names.split(",")))
        if capability in capabilities and holders.get(device_id) == channel:
            found.append(CapableSocket(device_id, channel, capabilities))
    return found
