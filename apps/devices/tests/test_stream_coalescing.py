"""A request stream merges queued text while the socket is busy, and sends at once when it is idle."""

from __future__ import annotations

import asyncio
import json
import uuid

from apps.devices.streams import RequestStream


class Socket:
    """A socket whose sends stay in flight while ``gate`` is closed."""

    def __init__(self) -> None:
        self.frames: list[dict] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.arrived = asyncio.Condition()

    async def send_text(self, text: str) -> None:
        async with self.arrived:
            self.frames.append(json.loads(text))
            self.arrived.notify_all()
        await self.gate.wait()

    async def wait_for(self, count: int) -> None:
        async with self.arrived:
            await asyncio.wait_for(self.arrived.wait_for(lambda: len(self.frames) >= count), 5)


def _text(request_id: str, chunk: str) -> dict:
    return {"type": "stream_text", "request_id": request_id, "chunk": chunk}


async def _finished(stream: RequestStream) -> None:
    stream.finish()
    await asyncio.wait_for(stream._writer, 10)


async def test_text_queued_behind_a_busy_socket_leaves_as_one_frame_with_the_next_seq():
    # given a request whose socket is still sending its first frame
    request_id = uuid.uuid4().hex
    stream = RequestStream(user_id="coalesce-user", request_id=request_id, node="test-node")
    socket = Socket()
    stream.attach(socket, 0)
    socket.gate.clear()
    stream.emit({"type": "stream_start", "request_id": request_id})
    await socket.wait_for(1)

    # when three tokens arrive meanwhile, then the socket frees up
    for chunk in ("Hel", "lo ", "there"):
        stream.emit(_text(request_id, chunk))
    socket.gate.set()
    stream.emit({"type": "stream_end", "request_id": request_id, "mutations": []})
    await _finished(stream)

    # then they left as one stream_text, numbering stays gapless and the resumable log holds the same frames
    assert [(f["type"], f.get("chunk"), f["seq"]) for f in socket.frames] == [
        ("stream_start", None, 1),
        ("stream_text", "Hello there", 2),
        ("stream_end", None, 3),
    ]
    assert [json.loads(text) for text in stream.log] == socket.frames


async def test_on_an_idle_socket_every_token_leaves_before_the_next_exists():
    # given a request on an idle socket
    request_id = uuid.uuid4().hex
    stream = RequestStream(user_id="coalesce-user", request_id=request_id, node="test-node")
    socket = Socket()
    stream.attach(socket, 0)

    # when tokens are produced one at a time, each waiting for the previous to be delivered
    for n, chunk in enumerate(("one ", "two ", "three"), start=1):
        stream.emit(_text(request_id, chunk))
        await socket.wait_for(n)

    # then each went out alone, without waiting for company
    await _finished(stream)
    assert [f["chunk"] for f in socket.frames] == ["one ", "two ", "three"]
    assert [f["seq"] for f in socket.frames] == [1, 2, 3]
