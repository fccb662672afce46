"""A local run's executor waiting for the device's next message stops when it is cancelled, even
when the cancellation comes in the very turn a message arrives (CPython 3.11's ``wait_for`` returned
the message then, and the run went on as if never cancelled)."""

from __future__ import annotations

import asyncio

import pytest

from apps.agents.local_runs import _next_message


async def test_a_cancellation_that_comes_with_a_message_stops_the_wait_and_keeps_the_message():
    # given an executor waiting for the device's next message
    inbox: asyncio.Queue[dict] = asyncio.Queue()
    waiting = asyncio.ensure_future(_next_message(inbox, 5))
    await asyncio.sleep(0)

    # when a message arrives and the executor is cancelled in the same turn
    inbox.put_nowait({"type": "agent_data", "files": []})
    waiting.cancel()

    # then the wait ends cancelled, and the message is still there for whoever reads next
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert inbox.get_nowait() == {"type": "agent_data", "files": []}


async def test_a_message_is_answered_and_silence_is_a_timeout():
    inbox: asyncio.Queue[dict] = asyncio.Queue()
    inbox.put_nowait({"type": "agent_complete"})

    assert await _next_message(inbox, 5) == {"type": "agent_complete"}
    with pytest.raises(TimeoutError):
        await _next_message(inbox, 0.01)
