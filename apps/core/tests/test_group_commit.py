"""GroupCommit: values submitted while a batch is written go together into the next one, each caller
gets its own answer, a failure stays with its batch; loop_local keeps one per event loop."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from apps.core.group_commit import GroupCommit, loop_local

# A flush runs through database_sync_to_async, which closes stale connections around it.
pytestmark = pytest.mark.django_db(transaction=True)


async def test_values_submitted_during_a_write_share_the_next_write():
    # given a write that holds until released
    started, release = threading.Event(), threading.Event()
    writes: list[list[int]] = []

    def write(values: list[int]) -> list[int]:
        writes.append(values)
        if len(writes) == 1:
            started.set()
            release.wait(10)
        return [v * 10 for v in values]

    commit: GroupCommit[int, int] = GroupCommit(write)
    first = commit.submit(1)
    assert await asyncio.to_thread(started.wait, 10)  # the first write is under way

    # when four more values arrive while it runs
    later = [commit.submit(v) for v in (2, 3, 4, 5)]
    release.set()

    # then they are written together, and each caller gets its own answer
    assert await first == 10
    assert await asyncio.gather(*later) == [20, 30, 40, 50]
    assert writes == [[1], [2, 3, 4, 5]]
    assert commit.batches == 2


async def test_a_failed_write_fails_its_own_batch_only():
    # given a write that fails for a batch holding a bad value
    def write(values: list[int]) -> list[int]:
        if 0 in values:
            raise ValueError("bad value")
        return values

    commit: GroupCommit[int, int] = GroupCommit(write)

    # when a bad batch is followed by a good one
    bad = commit.submit(0)
    with pytest.raises(ValueError, match="bad value"):
        await bad
    good = commit.submit(7)

    # then the next batch is written as usual
    assert await good == 7


async def test_gather_seconds_lets_values_arriving_one_after_another_share_a_batch():
    # given a batch that gathers for 0.2 s before it is written
    writes: list[list[int]] = []

    def write(values: list[int]) -> list[int]:
        writes.append(values)
        return values

    commit: GroupCommit[int, int] = GroupCommit(write, gather_seconds=0.2)

    # when three values arrive one after another, each a loop turn apart
    futures = []
    for value in (1, 2, 3):
        futures.append(commit.submit(value))
        await asyncio.sleep(0)

    # then they are written in one batch
    assert await asyncio.gather(*futures) == [1, 2, 3]
    assert writes == [[1, 2, 3]]


async def test_pace_seconds_lets_the_values_of_a_steady_stream_share_the_next_batch():
    # given batches paced 0.5 s apart, and a first value written at once
    writes: list[tuple[float, list[int]]] = []

    def write(values: list[int]) -> list[int]:
        writes.append((time.monotonic(), values))
        return values

    commit: GroupCommit[int, int] = GroupCommit(write, pace_seconds=0.5)
    assert await commit.submit(1) == 1

    # when values keep arriving one after another after that batch was written
    futures = []
    for value in (2, 3, 4):
        futures.append(commit.submit(value))
        await asyncio.sleep(0.02)

    # then they share the next batch, which started no sooner than the pace after the first (the
    # batches start 0.5 s apart; the writes are timed in the write's thread, where a busy box delayed
    # the first by 2 ms more than the second: unpaced, the second would follow within ~0.05 s)
    assert await asyncio.gather(*futures) == [2, 3, 4]
    assert [values for _, values in writes] == [[1], [2, 3, 4]]
    assert writes[1][0] - writes[0][0] >= 0.45


async def test_own_thread_writes_off_the_shared_sync_thread():
    # given a write that records the thread it runs on, once shared and once on its own thread
    def thread_name(values: list[int]) -> list[str]:
        return [threading.current_thread().name for _ in values]

    shared: GroupCommit[int, str] = GroupCommit(thread_name)
    own: GroupCommit[int, str] = GroupCommit(thread_name, own_thread=True)

    # when each writes a value
    on_shared, on_own = await shared.submit(1), await own.submit(1)

    # then the two ran on different threads (the shared one is the one thread_sensitive calls use)
    assert on_shared != on_own


async def test_a_cancelled_writer_cancels_the_callers_still_waiting():
    # given a write that never ends and two callers waiting on it
    release = threading.Event()

    def write(values: list[int]) -> list[int]:
        release.wait(10)
        return values

    commit: GroupCommit[int, int] = GroupCommit(write, gather_seconds=5)
    first, second = commit.submit(1), commit.submit(2)
    await asyncio.sleep(0)

    # when its writer is cancelled (the loop is ending)
    assert commit._writer is not None
    commit._writer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await commit._writer
    release.set()

    # then both callers are cancelled rather than left waiting
    assert first.cancelled()
    assert second.cancelled()


def test_loop_local_keeps_one_per_running_loop():
    # given a getter of one list per loop
    get = loop_local(list)

    async def twice() -> bool:
        return get() is get()

    async def one() -> list:
        return get()

    # then within a loop it is the same one, and another loop gets its own
    assert asyncio.run(twice())
    made = []
    for _ in range(2):
        loop = asyncio.new_event_loop()
        made.append(loop.run_until_complete(one()))
        loop.close()
    assert made[0] is not made[1]
