"""A loop's node on real Redis: reachable while its loop runs, gone without a trace when it ends."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from apps.core.encryption import InvalidToken, redis_seal, redis_unseal
from apps.devices.node import (
    ALIVE_KEY,
    NODE_CHANNEL,
    decode,
    encode,
    loop_node,
    node_publish,
    register_message_handler,
)
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


def test_a_node_message_crosses_redis_sealed_and_is_read_back_under_a_rotated_key(settings) -> None:
    # given a message sealed under the current Redis key
    message = {"type": "test.sealed", "call": {"data": {"note": "private words", 7: "x"}}, "n": 2**70}
    sealed = encode(message)

    # then its text is not in what crosses Redis, and it reads back (non-str keys as json gives them)
    assert b"private words" not in sealed
    assert decode(sealed) == {"type": "test.sealed", "call": {"data": {"note": "private words", "7": "x"}}, "n": 2**70}

    # and after a rotation (a new key first, the old one kept) it still opens
    settings.REDIS_ENCRYPTION_KEYS = ["redis:a-new-key", *settings.REDIS_ENCRYPTION_KEYS]
    assert decode(sealed)["call"]["data"]["note"] == "private words"


def test_a_node_message_of_the_previous_release_is_still_read() -> None:
    # given a message a node sealed as a Fernet token (before transit_seal), during a deploy
    sealed = redis_seal(json.dumps({"type": "devices.tool_result", "call_id": "c1"}))

    # then this release reads it
    assert decode(sealed) == {"type": "devices.tool_result", "call_id": "c1"}


@pytest.mark.parametrize("tamper", [lambda b: b[:-1] + bytes([b[-1] ^ 1]), lambda b: b"\x09" + b[1:], lambda b: b[:5]])
def test_a_tampered_or_foreign_node_message_is_refused(tamper) -> None:
    with pytest.raises(InvalidToken):
        decode(tamper(encode({"type": "x"})))


def test_during_a_roll_from_the_previous_release_node_messages_are_sealed_as_it_reads_them(settings) -> None:
    # given a process configured for a rolling deploy from the release before AES-GCM node messages
    settings.DEVICE_NODE_SEAL = "fernet"

    # when it publishes a message
    message = {"type": "devices.stream_attach", "request_id": "a private request id"}
    sealed = encode(message)

    # then a process of that release opens it as it did (a Fernet token of JSON text), and so does this one
    # (a Fernet token is URL-safe base64, which has no spaces, so the plain words cannot appear by chance)
    assert b"a private request id" not in sealed
    assert json.loads(redis_unseal(sealed)) == message
    assert decode(sealed) == message


async def test_an_eager_handler_that_does_not_wait_has_run_when_dispatch_returns() -> None:
    # given a handler registered eager, and one registered as before
    heard: list[str] = []

    async def eager(message: dict) -> None:
        heard.append("eager")

    async def tasked(message: dict) -> None:
        heard.append("tasked")

    register_message_handler("test.eager", eager, eager=True)
    register_message_handler("test.tasked", tasked)
    node = await loop_node()

    # when both are dispatched, without yielding to the loop
    node.dispatch({"type": "test.eager"})
    node.dispatch({"type": "test.tasked"})

    # then the eager one ran on the spot, the other only once the loop runs its task
    assert heard == ["eager"]
    await asyncio.sleep(0)
    assert heard == ["eager", "tasked"]


async def test_an_eagerly_run_coroutine_that_waits_goes_on_as_a_task_of_its_own() -> None:
    # given a coroutine that does part of its work, then waits on a future
    from apps.devices.node import run_eagerly

    gate = asyncio.get_running_loop().create_future()
    steps: list[object] = []

    async def handler() -> None:
        steps.append("before")
        steps.append(await gate)
        steps.append(asyncio.current_task())

    # when it is run eagerly
    task = run_eagerly(handler())

    # then it stopped at the wait, and finishes in its own task with what the future gave it
    assert steps == ["before"]
    assert task is not None
    assert not task.done()
    gate.set_result("answer")
    await task
    assert steps == ["before", "answer", task]


async def test_an_eagerly_run_coroutine_is_cancelled_through_its_task_and_failures_are_logged(caplog) -> None:
    # given a coroutine run eagerly that waits forever, cleaning up when cancelled
    from apps.devices.node import run_eagerly

    cleaned: list[str] = []

    async def waits_forever() -> None:
        try:
            await asyncio.get_running_loop().create_future()
        finally:
            cleaned.append("cleaned")

    async def fails_at_once() -> None:
        raise ValueError("broken handler")

    task = run_eagerly(waits_forever())
    assert task is not None

    # when its task is cancelled, and a coroutine that fails before any wait is run eagerly
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with caplog.at_level("ERROR", logger="apps.devices.node"):
        assert run_eagerly(fails_at_once()) is None

    # then the cancellation reached the coroutine, and the failure was logged, not raised
    assert cleaned == ["cleaned"]
    assert "node message handler failed" in caplog.text


def test_a_node_message_of_the_release_before_per_process_keys_is_still_read(settings) -> None:
    # given a message sealed as that release did: version 1, a nonce, AES-GCM under the Redis key's own
    # transit key (no salt)
    key = hashlib.sha256(b"adiuva-redis-transit:" + settings.REDIS_ENCRYPTION_KEYS[0].encode()).digest()
    nonce = os.urandom(12)
    sealed = b"\x01" + nonce + AESGCM(key).encrypt(nonce, b'{"type":"devices.tool_result","call_id":"c1"}', None)

    # then this release reads it
    assert decode(sealed) == {"type": "devices.tool_result", "call_id": "c1"}
