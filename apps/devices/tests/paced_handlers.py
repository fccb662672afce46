"""A paced request handler for a server process the test starts (``AsgiServerProcess(imports=
("apps.devices.tests.paced_server",))``, which registers it there, never in the test process):
it streams ``PACED_CHUNKS`` chunks, one every ``PACED_INTERVAL_SECONDS``, like a model
answering token by token. The message ``ENDLESS`` streams one chunk and then never ends (until it is
cancelled, when it ends its stream as the chat does)."""

from __future__ import annotations

import asyncio

PACED_CHUNKS = 40
PACED_INTERVAL_SECONDS = 0.05
ENDLESS = "endless"


def paced_text(i: int) -> str:
    return f"t{i} "


async def paced_request(session, frame) -> None:
    rid = frame.request_id
    await session.send({"type": "stream_start", "request_id": rid})
    if frame.message == ENDLESS:
        await session.send({"type": "stream_text", "request_id": rid, "chunk": paced_text(0)})
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await session.send({"type": "stream_end", "request_id": rid, "cancelled": True})
            raise
    for i in range(PACED_CHUNKS):
        await session.send({"type": "stream_text", "request_id": rid, "chunk": paced_text(i)})
        await asyncio.sleep(PACED_INTERVAL_SECONDS)
    await session.send({"type": "stream_end", "request_id": rid})
