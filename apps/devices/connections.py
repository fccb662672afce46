"""Sockets held by this process, per event loop, so a call from the socket's own loop skips Redis.

Keyed by event loop because a consumer's ``send`` only works on the loop that runs it; a caller
on another loop (a Celery worker, another thread) goes through the channel layer instead.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .device_socket import DeviceSocket

_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str], DeviceSocket]] = (
    weakref.WeakKeyDictionary()
)


def _table() -> dict[tuple[str, str], DeviceSocket]:
    loop = asyncio.get_running_loop()
    table = _by_loop.get(loop)
    if table is None:
        table = _by_loop[loop] = {}
    return table


def register(consumer: DeviceSocket) -> None:
    _table()[(consumer.user_id, consumer.device_id)] = consumer


def unregister(consumer: DeviceSocket) -> None:
    table = _table()
    key = (consumer.user_id, consumer.device_id)
    if table.get(key) is consumer:
        del table[key]


def local_consumer(*, user_id: str, device_id: str) -> DeviceSocket | None:
    return _table().get((user_id, device_id))


def local_count() -> int:
    return len(_table())


def local_consumers() -> list[DeviceSocket]:
    return list(_table().values())
