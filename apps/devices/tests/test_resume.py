"""Resumable request streams over real sockets: numbered frames, a request that outlives its socket,
``resume`` from a new socket with no gap and no duplicate (while the request runs and after it
ended), tool calls that follow the device to its new socket, and ``stream_expired`` for unknown,
other users' and expired requests."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

from asgiref.sync import sync_to_async

from apps.core.encryption import redis_seal
from apps.devices import streams
from apps.devices.node import node_alive
from apps.devices.realtime_redis import loop_redis
from apps.devices.tests.conftest import SOCKET_DB, Gate, chunk, device_row, frames_until_end, wait_until

pytestmark = SOCKET_DB


async def run_to_end(client, frame: dict[str, Any]) -> list[dict[str, Any]]:
    await client.send(frame)
    return await frames_until_end(client, frame["request_id"])


async def stream_gone(user, request_id: str) -> None:
    """The request finished here and its writer let go of it: from now on its log is only in Redis."""
    await wait_until(lambda: streams.stream_get(user_id=str(user.id), request_id=request_id) is None)


async def resume(client, request_id: str, after_seq: int) -> list[dict[str, Any]]:
    await client.send({"type": "resume", "request_id": request_id, "after_seq": after_seq})
    return await frames_until_end(client, request_id)


async def expired_answer(client, request_id: str) -> dict[str, Any]:
    await client.send({"type": "resume", "request_id": request_id, "after_seq": 0})
    return await client.next_frame()


def seqs(frames: list[dict[str, Any]]) -> list[int]:
    return [f["seq"] for f in frames]


def streamed(frames: list[dict[str, Any]]) -> str:
    return "".join(f["chunk"] for f in frames if f["type"] == "stream_text")


async def test_every_frame_of_a_request_carries_seq_from_one(devices, user, frame_handlers):
    # given a handler that sends every kind of request frame
    async def floating(session, frame):
        rid = frame.request_id
        await session.send({"type": "floating_domain", "request_id": rid, "domain": "tasks"})
        await session.send({"type": "stream_start", "request_id": rid})
        await session.send(chunk(rid, "hello"))
        await session.send({"type": "error", "request_id": rid, "code": "device_timeout", "message": "slow"})
        await session.send({"type": "stream_end", "request_id": rid})

    frame_handlers.register_request_handler("floating_request", floating)
    client = await devices(user)

    # when two requests run one after the other on one socket
    first = await run_to_end(
        client, {"type": "floating_request", "request_id": "f1", "message": "x", "scope": {"type": "tasks"}}
    )
    second = await run_to_end(
        client, {"type": "floating_request", "request_id": "f2", "message": "y", "scope": {"type": "tasks"}}
    )

    # then each request numbers all of its frames from 1
    assert [f["type"] for f in first] == ["floating_domain", "stream_start", "stream_text", "error", "stream_end"]
    assert seqs(first) == [1, 2, 3, 4, 5]
    assert seqs(second) == [1, 2, 3, 4, 5]


async def test_a_request_outlives_its_socket_and_a_resume_while_it_runs_gets_every_frame_once(
    devices, user, frame_handlers
):
    # given a request that streams, pauses until its socket dropped, streams with no socket
    # attached, pauses until the device is back, then streams more and calls the device
    dropped, back = Gate(), Gate()
    streamed_alone = threading.Event()

    async def home(session, frame):
        rid = frame.request_id
        await session.send({"type": "stream_start", "request_id": rid})
        for i in range(5):
            await session.send(chunk(rid, f"a{i} "))
        await dropped.passed()
        for i in range(5):
            await session.send(chunk(rid, f"b{i} "))
        streamed_alone.set()
        await back.passed()
        for i in range(20):
            await session.send(chunk(rid, f"c{i} "))
            await asyncio.sleep(0)
        result = await session.call(action="insert", table="tasks", data={"title": "after resume"})
        await session.send(chunk(rid, f"[{result['row']['title']}]"))
        await session.send({"type": "stream_end", "request_id": rid})

    frame_handlers.register_request_handler("home_request", home)
    first = await devices(user, device_id="desk")
    await first.send({"type": "home_request", "request_id": "r1", "message": "go"})
    before = await frames_until_end(first, "r1", first=2)

    # when the socket drops, the request goes on alone, and the device comes back on a new socket
    await first.close()

    async def offline() -> bool:
        row = await device_row(user, "desk")
        return row is not None and not row.is_online

    await wait_until(offline)
    dropped.open()
    await wait_until(streamed_alone.is_set)
    second = await devices(user, device_id="desk")
    await second.send({"type": "resume", "request_id": "r1", "after_seq": before[-1]["seq"]})
    back.open()  # live frames race with the replay
    after = await frames_until_end(second, "r1")

    # then the new socket got every later frame exactly once, in order, then the live rest
    frames = before + after
    assert seqs(frames) == list(range(1, len(frames) + 1))
    assert frames[0]["type"] == "stream_start"
    assert frames[-1]["type"] == "stream_end"
    expected = "".join(f"a{i} " for i in range(5)) + "".join(f"b{i} " for i in range(5))
    expected += "".join(f"c{i} " for i in range(20)) + "[after resume]"
    assert streamed(frames) == expected
    # and the tool call made after the device was back reached its new socket
    assert [(c["action"], c["table"]) for c in second.tool_calls] == [("insert", "tasks")]
    assert first.tool_calls == []
    assert [r["title"] for r in second.store.execute({"action": "select", "table": "tasks"})["rows"]] == [
        "after resume"
    ]


async def test_a_resume_after_the_end_replays_the_kept_log_to_any_socket_of_the_user(devices, user, frame_handlers):
    # given a finished request whose log is only in Redis now
    async def home(session, frame):
        rid = frame.request_id
        await session.send({"type": "stream_start", "request_id": rid})
        for word in ("one ", "two ", "three"):
            await session.send(chunk(rid, word))
            await asyncio.sleep(0.01)  # separate frames, not one coalesced chunk
        await session.send({"type": "stream_end", "request_id": rid})

    frame_handlers.register_request_handler("home_request", home)
    client = await devices(user)
    original = await run_to_end(client, {"type": "home_request", "request_id": "done1", "message": "hi"})
    await stream_gone(user, "done1")

    # when another device of the same user resumes it after its second frame, and from the start
    other = await devices(user)
    tail = await resume(other, "done1", 2)
    whole = await resume(other, "done1", 0)

    # then each replay is the original frames after after_seq, in order, ending with stream_end
    assert seqs(original) == list(range(1, len(original) + 1))
    assert tail == original[2:]
    assert whole == original


async def test_a_resume_after_seq_beyond_a_64_bit_integer_is_an_invalid_frame_and_the_socket_lives_on(
    devices, user, frame_handlers
):
    # given a finished request whose log is only in Redis now (Redis ranges take 64-bit integers)
    async def home(session, frame):
        await session.send({"type": "stream_start", "request_id": frame.request_id})
        await session.send({"type": "stream_end", "request_id": frame.request_id})

    frame_handlers.register_request_handler("home_request", home)
    client = await devices(user)
    await run_to_end(client, {"type": "home_request", "request_id": "big", "message": "hi"})
    await stream_gone(user, "big")

    for after_seq in (2**63, 10**400):
        # when a device resumes it after a sequence number no 64-bit integer holds
        await client.send({"type": "resume", "request_id": "big", "after_seq": after_seq})
        # then it is refused as an invalid frame naming the field, and the socket still answers
        error = await client.next_frame()
        assert (error["type"], error["code"]) == ("error", "invalid_frame")
        assert "after_seq" in error["message"]
        await client.send({"type": "ping"})
        assert await client.next_frame() == {"type": "pong"}


async def test_unknown_and_other_users_requests_are_stream_expired(devices, user, make_user, frame_handlers):
    # given alice's request, running until released
    bob = await sync_to_async(make_user)("bob@example.com")
    release = Gate()

    async def home(session, frame):
        await session.send({"type": "stream_start", "request_id": frame.request_id})
        await release.passed()
        await session.send({"type": "stream_end", "request_id": frame.request_id})

    frame_handlers.register_request_handler("home_request", home)
    alice_client = await devices(user)
    await alice_client.send({"type": "home_request", "request_id": "private", "message": "hi"})
    await frames_until_end(alice_client, "private", first=1)
    bob_client = await devices(bob)

    # when bob resumes it while it runs and after it ended, and asks for an id nobody used
    while_running = await expired_answer(bob_client, "private")
    release.open()
    await frames_until_end(alice_client, "private")
    await stream_gone(user, "private")
    after_end = await expired_answer(bob_client, "private")
    unknown = await expired_answer(bob_client, "never-sent")

    # then every answer is stream_expired for that request, and bob received none of alice's frames
    for answer, request_id in ((while_running, "private"), (after_end, "private"), (unknown, "never-sent")):
        assert answer["type"] == "error"
        assert answer["code"] == "stream_expired"
        assert answer["request_id"] == request_id
    await bob_client.send({"type": "ping"})
    assert await bob_client.next_frame() == {"type": "pong"}


async def test_a_log_past_its_retention_is_stream_expired(devices, user, frame_handlers, settings):
    # given a one-second retention and a finished request
    settings.DEVICE_STREAM_RETAIN_SECONDS = 1

    async def home(session, frame):
        await session.send({"type": "stream_end", "request_id": frame.request_id})

    frame_handlers.register_request_handler("home_request", home)
    client = await devices(user)
    await run_to_end(client, {"type": "home_request", "request_id": "old", "message": "hi"})
    await stream_gone(user, "old")

    # when its retention has passed
    meta = streams.META_KEY.format(user_id=user.id, request_id="old")

    async def evicted() -> bool:
        return not await loop_redis().exists(meta)

    await wait_until(evicted)
    answer = await expired_answer(client, "old")

    # then
    assert (answer["code"], answer["request_id"]) == ("stream_expired", "old")


async def test_only_the_newest_logs_per_user_are_kept(devices, user, frame_handlers, settings):
    # given room for two logs per user, and three finished requests
    settings.DEVICE_STREAM_RETAIN_PER_USER = 2

    async def home(session, frame):
        await session.send({"type": "stream_end", "request_id": frame.request_id})

    frame_handlers.register_request_handler("home_request", home)
    client = await devices(user)
    for request_id in ("n1", "n2", "n3"):
        await run_to_end(client, {"type": "home_request", "request_id": request_id, "message": "hi"})
        await stream_gone(user, request_id)

    # when the device resumes the oldest and the newest
    oldest = await expired_answer(client, "n1")
    newest = await resume(client, "n3", 0)

    # then the oldest is gone, the newest replays
    assert (oldest["code"], oldest["request_id"]) == ("stream_expired", "n1")
    assert [(f["type"], f["seq"]) for f in newest] == [("stream_end", 1)]


async def test_a_running_request_evicted_by_newer_ones_is_never_replayed_with_a_gap(
    devices, user, frame_handlers, settings
):
    # given room for one log per user, and a request that has streamed (and persisted) some frames
    settings.DEVICE_STREAM_RETAIN_PER_USER = 1
    release = Gate()
    persisted = streams.LOG_KEY.format(user_id=user.id, request_id="long")

    async def home(session, frame):
        rid = frame.request_id
        await session.send({"type": "stream_start", "request_id": rid})
        if rid == "long":
            await session.send(chunk(rid, "early "))
            await release.passed()
            await session.send(chunk(rid, "late"))
        await session.send({"type": "stream_end", "request_id": rid})

    frame_handlers.register_request_handler("home_request", home)
    client = await devices(user)
    await client.send({"type": "home_request", "request_id": "long", "message": "hi"})
    await frames_until_end(client, "long", first=2)

    async def logged() -> bool:
        return await loop_redis().llen(persisted) == 2

    await wait_until(logged)

    # when a newer request takes the only place while the first still runs, and the first then ends
    await run_to_end(client, {"type": "home_request", "request_id": "short", "message": "hi"})
    release.open()
    await frames_until_end(client, "long")
    await stream_gone(user, "long")
    other = await devices(user)
    await other.send({"type": "resume", "request_id": "long", "after_seq": 1})
    answer = await other.next_frame()

    # then its log is gone as a whole (stream_expired), never replayed from the middle
    assert (answer["type"], answer.get("code"), answer["request_id"]) == ("error", "stream_expired", "long")


async def test_a_running_request_is_found_from_any_process_before_its_frames_are_persisted(
    devices, user, frame_handlers, monkeypatch
):
    # given a request that streamed its first frames and waits, with its log's batches written late
    # (as under load, when the writer's delayed persist has not run yet)
    monkeypatch.setattr(streams, "PERSIST_DELAY_SECONDS", 3600)
    release = Gate()

    async def home(session, frame):
        await session.send({"type": "stream_start", "request_id": frame.request_id})
        await session.send(chunk(frame.request_id, "first "))
        await release.passed()
        await session.send({"type": "stream_end", "request_id": frame.request_id})

    frame_handlers.register_request_handler("home_request", home)
    client = await devices(user)
    await client.send({"type": "home_request", "request_id": "early", "message": "hi"})
    try:
        await frames_until_end(client, "early", first=2)

        # when another process looks it up for a device that resumes there (it reads only Redis)
        raw = await loop_redis().hgetall(streams.META_KEY.format(user_id=user.id, request_id="early"))
        meta = {streams._text(k): streams._text(v) for k, v in raw.items()}

        # then it finds the request, its owner, and the live process that runs it (to relay from)
        assert (meta.get("user_id"), meta.get("ended")) == (str(user.id), "0")
        assert await node_alive(meta["node"])
    finally:
        release.open()
    await frames_until_end(client, "early")


async def test_a_request_whose_process_died_unfinished_replays_its_log_then_says_it_was_cut(devices, user):
    # given a request another process opened and logged two frames of, then died before its end
    redis = loop_redis()
    ids = {"user_id": str(user.id), "request_id": "orphan"}
    log = [
        {"type": "stream_start", "request_id": "orphan", "seq": 1},
        {**chunk("orphan", "half an ans"), "seq": 2},
    ]
    await redis.rpush(streams.LOG_KEY.format(**ids), *(redis_seal(json.dumps(f)) for f in log))
    await redis.hset(
        streams.META_KEY.format(**ids), mapping={"user_id": str(user.id), "node": "gone-node", "ended": "0"}
    )
    assert not await node_alive("gone-node")
    client = await devices(user)

    # when the device resumes it
    await client.send({"type": "resume", "request_id": "orphan", "after_seq": 0})
    frames = [await client.next_frame() for _ in range(3)]

    # then it gets what was logged, then an error saying the answer was cut (never a silent wait)
    assert [f["type"] for f in frames] == ["stream_start", "stream_text", "error"]
    assert (frames[2]["code"], frames[2]["request_id"]) == ("server_restarting", "orphan")
