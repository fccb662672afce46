"""One reader per event loop for the channel-layer messages of the device sockets it holds.

channels-redis brings every message for this layer's process-specific channels
(``specific.<prefix>!<name>``) through one Redis list. Channels' consumer loop keeps a receive task
per socket waiting for its share (plus two helper tasks inside channels-redis), which is most of an
idle socket's cost. Here one task per loop reads that list and hands each message to its socket
(``DeviceConsumer.layer_message``), which delivers it in order, one message at a time, between the
frames of its own socket. A message for a socket that is gone is dropped (its caller times out, as
before). When the layer's Redis is unavailable every socket of the loop is told, so each closes with
a code the client retries on, and the reader stops until the next socket joins.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import TYPE_CHECKING, Any

from apps.core.cancellation import raise_if_cancelling
from apps.core.redis_outage import REDIS_UNAVAILABLE_ERRORS

if TYPE_CHECKING:
    from .device_socket import DeviceSocket

logger = logging.getLogger(__name__)

_RETRY_AFTER_FAILURE = 0.1  # seconds: a failure that repeats must not spin the loop


class _Inbox:
    __slots__ = ("layer", "local_name", "sockets", "task")

    def __init__(self, layer: Any, local_name: str) -> None:
        self.layer = layer
        self.local_name = local_name  # the Redis list every channel of this layer shares
        self.sockets: dict[str, DeviceSocket] = {}
        self.task: asyncio.Task | None = None


# Per loop, per layer instance (a test may give one loop a second layer).
_inboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, _Inbox]] = weakref.WeakKeyDictionary()


def inbox_join(consumer: DeviceSocket) -> None:
    """Deliver the messages of ``consumer.channel_name`` (on ``consumer.channel_layer``) to it."""
    loop = asyncio.get_running_loop()
    layer = consumer.channel_layer
    per_layer = _inboxes.setdefault(loop, {})
    inbox = per_layer.get(id(layer))
    if inbox is None:
        inbox = per_layer[id(layer)] = _Inbox(layer, layer.non_local_name(consumer.channel_name))
    inbox.sockets[consumer.channel_name] = consumer
    if inbox.task is None or inbox.task.done():
        inbox.task = loop.create_task(_read(inbox), name="devices-channel-inbox")


def inbox_leave(consumer: DeviceSocket) -> None:
    per_layer = _inboxes.get(asyncio.get_running_loop(), {})
    inbox = per_layer.get(id(consumer.channel_layer))
    if inbox is None or inbox.sockets.get(consumer.channel_name) is not consumer:
        return
    # The reader keeps reading when its last socket leaves (a message for nobody is dropped): a read
    # cancelled inside channels-redis is only restored from its backup queue on a later read.
    del inbox.sockets[consumer.channel_name]


async def _read(inbox: _Inbox) -> None:
    while True:
        try:
            channel, message = await inbox.layer.receive_single(inbox.local_name)
        except REDIS_UNAVAILABLE_ERRORS as exc:
            raise_if_cancelling()
            sockets = list(inbox.sockets.values())
            inbox.sockets.clear()
            for held in sockets:
                held.layer_message(exc)
            return
        except Exception:
            raise_if_cancelling()
            # One message that cannot be read (a key rotated away, a bug) must not cut every socket off.
            logger.exception("devices: a channel-layer message could not be read")
            await asyncio.sleep(_RETRY_AFTER_FAILURE)
            continue
        _deliver(inbox, channel, message)


def _deliver(inbox: _Inbox, channel: str, message: dict) -> None:
    # Not inline in ``_read``: its local would keep the last socket it delivered to in memory while it
    # waits for the next message, however long ago that socket closed.
    consumer = inbox.sockets.get(channel)
    if consumer is not None:
        consumer.layer_message(message)
