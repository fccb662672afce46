"""Tool-call ids: unique within and across processes, and cheap for per-message deflate."""

from __future__ import annotations

import os
import zlib

from apps.devices.call_ids import new_call_id
from apps.devices.frames import tool_call_frame, tool_call_json


def _deflated_sizes(frames: list[str]) -> list[int]:
    """Each frame's size as a per-message-deflate socket sends it (context kept, window and memory
    level as uvicorn's and websockets' defaults)."""
    encoder = zlib.compressobj(wbits=-12, memLevel=5)
    return [len(encoder.compress(text.encode()) + encoder.flush(zlib.Z_SYNC_FLUSH)) for text in frames]


def test_ids_are_32_hex_digits_and_never_repeat() -> None:
    ids = [new_call_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(len(call_id) == 32 and int(call_id, 16) >= 0 for call_id in ids)


def test_consecutive_tool_calls_deflate_to_little_more_than_a_back_reference() -> None:
    # 32 random hex digits carry 16 bytes that no compressor can remove (and cost zlib's match
    # search the most); these ids repeat their process's prefix.
    frames = [tool_call_json(tool_call_frame(action="get", table="tasks", data={"id": "x"})) for _ in range(100)]
    sizes = _deflated_sizes(frames)[1:]
    assert sum(sizes) / len(sizes) < 16


def test_a_forked_child_draws_its_own_prefix() -> None:
    parent = new_call_id()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id and leave at once
        try:
            os.write(write_end, new_call_id().encode())
        finally:
            os._exit(0)
    os.close(write_end)
    child = os.read(read_end, 64).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    assert len(child) == 32
    assert child[:20] != parent[:20]
