"""Node messages on the wire: RESP read as it arrives, and connections that come back after a drop."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from apps.devices.node import NODE_CHANNEL, loop_node, node_publish, register_message_handler
from apps.devices.node_wire import SUBSCRIPTION_CLIENT, RespError, RespReader, command
from apps.devices.realtime_redis import loop_publisher, loop_redis

REPLIES = (
    b"*3\r\n$9\r\nsubscribe\r\n$4\r\nchan\r\n:1\r\n"
    b"*3\r\n$7\r\nmessage\r\n$4\r\nchan\r\n$5\r\nhe\r\nl\r\n"
    b">3\r\n$7\r\nmessage\r\n$4\r\nchan\r\n$0\r\n\r\n"
    b":42\r\n-ERR wrong\r\n+OK\r\n$-1\r\n"
)
EXPECTED = [
    [b"subscribe", b"chan", 1],
    [b"message", b"chan", b"he\r\nl"],
    [b"message", b"chan", b""],
    42,
    RespError("ERR wrong"),
    b"OK",
    None,
]


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, len(REPLIES)])
def test_replies_split_anywhere_read_back_whole_and_in_order(chunk) -> None:
    reader = RespReader()
    values = []
    for at in range(0, len(REPLIES), chunk):
        values.extend(reader.feed(REPLIES[at : at + chunk]))
    assert values == EXPECTED
    assert isinstance(values[4], RespError)


def test_a_command_is_an_array_of_bulk_strings() -> None:
    assert command(b"PUBLISH", "chan", b"a\r\nb") == b"*3\r\n$7\r\nPUBLISH\r\n$4\r\nchan\r\n$4\r\na\r\nb\r\n"


async def _kill_clients(name_prefix: str) -> int:
    redis = loop_redis()
    killed = 0
    for client in await redis.client_list():
        if client.get("name", "").startswith(name_prefix):
            killed += int(await redis.client_kill_filter(_id=client["id"]))
    return killed


def test_a_node_hears_again_after_its_connections_are_killed() -> None:
    heard: list[int] = []

    async def note(message: dict) -> None:
        heard.append(message["n"])

    register_message_handler("test.node_wire", note)

    async def loop() -> tuple[int, int, list[int]]:
        node = await loop_node()
        assert await node_publish(node.name, {"type": "test.node_wire", "n": 1}) == 1
        # when Redis drops both the node's subscription and this loop's publishing connection
        killed_sub = await _kill_clients(f"{SUBSCRIPTION_CLIENT}:{NODE_CHANNEL.format(node=node.name)}")
        killed_pub = await _kill_clients(loop_publisher().client_name)
        # then within moments the node is subscribed again and a publish reaches it
        for _ in range(100):
            await asyncio.sleep(0.05)
            try:
                if await node_publish(node.name, {"type": "test.node_wire", "n": 2}) == 1:
                    break
            except RedisConnectionError:
                continue
        for _ in range(100):
            if 2 in heard:
                break
            await asyncio.sleep(0.02)
        return killed_sub, killed_pub, heard

    killed_sub, killed_pub, seen = asyncio.run(loop())
    assert (killed_sub, killed_pub) == (1, 1)
    assert seen[0] == 1
    assert 2 in seen


def test_a_script_runs_on_the_node_connection_whether_or_not_redis_knows_it() -> None:
    source = "return {ARGV[1], tonumber(ARGV[2]) + 1, redis.call('EXISTS', KEYS[1])}"

    async def loop() -> list:
        await loop_redis().script_flush()
        first = await loop_publisher().run_script(source, keys=["test:node_wire:none"], args=[b"a\r\nb", 41])
        second = await loop_publisher().run_script(source, keys=["test:node_wire:none"], args=["c", 1])
        return [first, second]

    assert asyncio.run(loop()) == [[b"a\r\nb", 42, 0], [b"c", 2, 0]]
