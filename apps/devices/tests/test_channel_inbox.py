"""The loop's one channel-layer reader: each socket gets its own messages, in order, on a real Redis layer."""

from __future__ import annotations

import uuid
from typing import Any

import redis.exceptions
from channels_redis.core import RedisChannelLayer

from apps.devices import channel_inbox
from apps.devices.channel_layer import loop_layer
from apps.devices.tests.conftest import wait_until


class Socket:
    """What the reader needs of a consumer: its layer, its channel, and where messages go."""

    def __init__(self, layer: Any, channel_name: str) -> None:
        self.channel_layer = layer
        self.channel_name = channel_name
        self.received: list[Any] = []

    def layer_message(self, message: Any) -> None:
        self.received.append(message)


async def _socket(layer: Any) -> Socket:
    socket = Socket(layer, await layer.new_channel())
    channel_inbox.inbox_join(socket)  # type: ignore[arg-type]  # a stand-in with the consumer's three members
    return socket


def _message(n: int) -> dict:
    return {"type": "devices.send_frame", "n": n}


async def test_each_socket_gets_its_own_messages_in_order():
    # given two sockets of the loop's layer
    layer = loop_layer()
    first, second = await _socket(layer), await _socket(layer)

    # when messages for both are sent, interleaved
    for n in range(5):
        await layer.send(first.channel_name, _message(n))
        await layer.send(second.channel_name, _message(100 + n))

    # then each got its own, in the order sent
    await wait_until(lambda: len(first.received) == 5 and len(second.received) == 5)
    assert [m["n"] for m in first.received] == [0, 1, 2, 3, 4]
    assert [m["n"] for m in second.received] == [100, 101, 102, 103, 104]


async def test_a_message_for_a_socket_that_left_is_dropped_and_the_others_still_arrive():
    # given a socket that left and one that stays
    layer = loop_layer()
    gone, stays = await _socket(layer), await _socket(layer)
    channel_inbox.inbox_leave(gone)

    # when a message goes to each, and one to a channel nobody ever held
    await layer.send(gone.channel_name, _message(1))
    await layer.send(await layer.new_channel(), _message(2))
    await layer.send(stays.channel_name, _message(3))

    # then only the socket that stays got its message, and the reader kept reading
    await wait_until(lambda: stays.received)
    assert [m["n"] for m in stays.received] == [3]
    assert gone.received == []


async def test_every_socket_is_told_when_the_layers_redis_is_unavailable(tmp_path):
    # given two sockets on a layer whose Redis is gone
    unreachable = RedisChannelLayer(hosts=[f"unix://{tmp_path}/no-redis-{uuid.uuid4().hex}.sock"])
    sockets = [await _socket(unreachable), await _socket(unreachable)]

    # when the reader tries to read, then each socket gets the failure (it closes with TRY_AGAIN_LATER)
    await wait_until(lambda: all(s.received for s in sockets))
    for socket in sockets:
        assert len(socket.received) == 1
        assert isinstance(socket.received[0], redis.exceptions.ConnectionError)
