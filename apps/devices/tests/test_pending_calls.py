"""The pending-call table: local futures resolved or failed, remote waiters returned to be told."""

from __future__ import annotations

import asyncio
import time
import tracemalloc

import pytest

from apps.devices.errors import DeviceDisconnectedError, DeviceTimeoutError
from apps.devices.pending_calls import PendingCalls, RemoteWaiter


async def test_result_resolves_a_local_waiter_and_names_a_remote_one():
    # given one local and one remote call
    calls = PendingCalls()
    future = calls.add_local("a", timeout=5)
    calls.add_remote("b", deadline=time.time() + 5, reply_to="reply!1")
    # when both are answered
    assert calls.resolve("a", {"ok": True}) is None
    assert calls.resolve("b", {"ok": True}) == "reply!1"
    # then the local future holds the result and nothing is left
    assert future.result() == {"ok": True}
    assert len(calls) == 0
    assert calls.resolve("a", {}) is None  # a late answer is ignored


async def test_disconnect_fails_local_waiters_and_returns_remote_ones():
    calls = PendingCalls()
    future = calls.add_local("a", timeout=5)
    calls.add_remote("b", deadline=time.time() + 5, reply_to="reply!2")
    remote = calls.fail_all(DeviceDisconnectedError())
    assert remote == [RemoteWaiter("b", "reply!2")]
    with pytest.raises(DeviceDisconnectedError):
        future.result()


async def test_each_local_call_times_out_at_its_own_deadline_whatever_the_others_wait_for():
    # given a long call, then a short one, then another long one
    calls = PendingCalls()
    first_long = calls.add_local("long-1", timeout=60)
    short = calls.add_local("short", timeout=0.05)
    second_long = calls.add_local("long-2", timeout=60)
    # when the short one's deadline passes, it fails as timed out and leaves the table
    with pytest.raises(DeviceTimeoutError):
        await asyncio.wait_for(short, 5)
    assert "short" not in calls
    # and the long ones are still waiting
    assert not first_long.done()
    assert not second_long.done()
    # then a short call made after them times out too, and an answer in time is kept
    late_short = calls.add_local("short-2", timeout=0.05)
    answered = calls.add_local("answered", timeout=0.05)
    assert calls.resolve("answered", {"ok": True}) is None
    with pytest.raises(DeviceTimeoutError):
        await asyncio.wait_for(late_short, 5)
    assert answered.result() == {"ok": True}
    assert not first_long.done()
    assert not second_long.done()


async def test_a_local_call_outliving_an_earlier_ones_deadline_times_out_at_its_own():
    # given a short call and, behind it, a slightly longer one
    calls = PendingCalls()
    first = calls.add_local("a", timeout=0.05)
    second = calls.add_local("b", timeout=0.3)
    calls.resolve("a", {})
    assert first.done()
    # when the first deadline passes with nothing due, the second still times out at its own
    with pytest.raises(DeviceTimeoutError):
        await asyncio.wait_for(second, 5)


async def test_a_failed_table_takes_new_local_calls_with_working_deadlines():
    calls = PendingCalls()
    calls.add_local("a", timeout=0.05)
    calls.fail_all(DeviceDisconnectedError())
    fresh = calls.add_local("b", timeout=0.05)
    with pytest.raises(DeviceTimeoutError):
        await asyncio.wait_for(fresh, 5)


def test_expired_remote_calls_are_swept_and_late_answers_dropped():
    calls = PendingCalls()
    calls.add_remote("old", deadline=time.time() - 1, reply_to="r")
    calls.add_remote("new", deadline=time.time() + 60, reply_to="r")
    assert calls.sweep_expired() == 1
    assert "old" not in calls
    assert "new" in calls


def bytes_per_table(make) -> float:
    """Bytes Python allocates per table made by ``make`` (the list holding them aside)."""
    tables = [None] * 1000
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(1000):
            tables[n] = make()
        return (tracemalloc.get_traced_memory()[0] - before) / 1000
    finally:
        tracemalloc.stop()


async def test_a_table_with_no_call_in_flight_holds_no_dict_of_its_own():
    # given a socket's table as made at connect, and one whose calls were answered and then swept
    def swept() -> PendingCalls:
        calls = PendingCalls()
        calls.add_remote("a", deadline=time.time() + 5, reply_to="r")
        calls.resolve("a", {})
        calls.sweep_expired()
        return calls

    # then each costs no more than a bare object with one slot (it was ~150: an instance dict and a dict)
    assert bytes_per_table(PendingCalls) <= 64
    assert bytes_per_table(swept) <= 64
    # and both still take calls, and a sweep keeps the calls in flight
    for calls in (PendingCalls(), swept()):
        calls.add_remote("b", deadline=time.time() + 5, reply_to="r")
        calls.sweep_expired()
        assert "b" in calls
        assert len(calls) == 1
        assert calls.resolve("b", {}) == "r"
        assert "b" not in calls
