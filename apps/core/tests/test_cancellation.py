"""Cancellations the libraries lose on CPython 3.11 (apps.core.cancellation): a task still stops."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from apps.core.cancellation import raise_if_cancelling, task_stopped


def _loses_its_first_cancellation(cancellations: list[int], when_lost: Callable[[], None]) -> asyncio.Task:
    """A task that waits forever and, at its first cancellation, calls ``when_lost`` and carries on
    (a second one ends it); each cancellation it sees is counted in ``cancellations``."""

    async def waits_forever() -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                cancellations.append(1)
                if len(cancellations) > 1:
                    raise
                when_lost()

    return asyncio.ensure_future(waits_forever())


async def test_a_task_that_drops_its_first_cancellation_is_cancelled_again_until_it_ends():
    # given a task that drops its first cancellation, as channels-redis' receive does when it comes
    # during a command's send (3.11's asyncio.wait_for, under which redis-py sends, returns the
    # send's result instead), and then blocks in its next pop
    cancellations: list[int] = []
    task = _loses_its_first_cancellation(cancellations, when_lost=lambda: None)
    await asyncio.sleep(0)

    # when it is stopped
    stopping = asyncio.ensure_future(task_stopped(task))
    done, _ = await asyncio.wait({stopping}, timeout=2)

    # then it ended, at the second cancellation, well within the wait (a stop that hung is cancelled,
    # which also ends the task)
    stopping.cancel()
    assert done == {stopping}
    assert task.cancelled()
    assert len(cancellations) == 2


async def test_a_task_that_ends_with_an_error_is_stopped_without_raising_it():
    async def failing() -> None:
        raise RuntimeError("boom")

    task = asyncio.ensure_future(failing())
    await asyncio.sleep(0)

    await task_stopped(task)  # does not raise

    assert isinstance(task.exception(), RuntimeError)


async def test_a_cancellation_turned_into_an_error_is_raised_again():
    # given a loop that carries on after errors, cancelled while a library reported a connection
    # error instead (only a second cancellation would end it otherwise)
    def library_error_handled() -> None:
        try:
            raise ConnectionError("closed")  # what the library raised instead
        except ConnectionError:
            raise_if_cancelling()

    cancellations: list[int] = []
    task = _loses_its_first_cancellation(cancellations, when_lost=library_error_handled)
    await asyncio.sleep(0)

    # when it is cancelled once
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=2)

    # then it stopped instead of going round again
    task.cancel()  # (a loop that went round is ended by a second one)
    assert done == {task}
    assert cancellations == [1]
    with pytest.raises(asyncio.CancelledError):
        task.result()
