"""A local run's executor waiting for the device's next message stops when it is cancelled, even
when the cancellation comes in the very turn a message arrives (CPython 3.11's ``wait_for`` returned
the message then, and the run went on as if never cancelled)."""

from __future__ import annotations

import asyncio

import pytest

from apps.agents import local_runs
from apps.agents.local_runs import _next_message
from apps.agents.models import RunStatus

from .conftest import execute, one_task_per_file, start_run, write_files


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


@pytest.mark.django_db(transaction=True)
async def test_a_run_takes_every_message_of_the_device_through_that_wait(
    devices, user, llm, make_local_config, tmp_path, monkeypatch
):
    # The tests above hold only while the executor waits through _next_message: the device's
    # every agent_data piece and its agent_complete must come to a run that way.
    taken: list[str] = []

    async def watched(inbox, seconds):
        message = await _next_message(inbox, seconds)
        taken.append(message["type"])
        return message

    monkeypatch.setattr(local_runs, "_next_message", watched)
    write_files(tmp_path / "inbox", 2)
    client = await devices(user)
    config = await make_local_config(client.device_id, [str(tmp_path / "inbox")])
    llm.fallback = one_task_per_file

    run = await execute(await start_run(config))

    assert run.status == RunStatus.SUCCESS
    assert local_runs.MSG_DATA in taken
    assert taken[-1] == local_runs.MSG_COMPLETE
