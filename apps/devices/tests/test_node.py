"""A loop's node on real Redis: reachable while its loop runs, gone without a trace when it ends."""

from __future__ import annotations

import asyncio

from apps.devices.node import ALIVE_KEY, NODE_CHANNEL, loop_node, node_publish, register_message_handler
from apps.devices.realtime_redis import loop_redis


def test_a_node_hears_messages_while_its_loop_runs_and_leaves_nothing_when_it_ends() -> None:
    # given a loop that starts its node and waits for one message, as async_to_sync runs a task
    heard: list[dict] = []
    register_message_handler("test.node_echo", lambda message: _append(heard, message))

    async def short_lived_loop() -> tuple[str, bool]:
        node = await loop_node()
        alive = bool(await loop_redis().exists(ALIVE_KEY.format(node=node.name)))
        assert await node_publish(node.name, {"type": "test.node_echo", "n": 1}) == 1
        for _ in range(200):
            if heard:
                break
            await asyncio.sleep(0.01)
        return node.name, alive

    # when the loop ends
    name, alive_while_running = asyncio.run(short_lived_loop())

    # then it was alive and heard the message; now no key, no subscriber, and a publish says so
    async def after() -> tuple[int, int, int]:
        redis = loop_redis()
        [(_, subscribers)] = await redis.pubsub_numsub(NODE_CHANNEL.format(node=name))
        return await redis.exists(ALIVE_KEY.format(node=name)), subscribers, await node_publish(name, {"type": "x"})

    assert alive_while_running is True
    assert heard == [{"type": "test.node_echo", "n": 1}]
    assert asyncio.run(after()) == (0, 0, 0)


async def _append(heard: list[dict], message: dict) -> None:
    heard.append(message)
