"""The pending-call table: local futures resolved or failed, remote waiters returned to be told."""

from __future__ import annotations

import time

import pytest

from apps.devices.errors import DeviceDisconnectedError
from apps.devices.pending_calls import PendingCalls, RemoteWaiter


async def test_result_resolves_a_local_waiter_and_names_a_remote_one():
    # given one local and one remote call
    calls = PendingCalls()
    future = calls.add_local("a", deadline=time.time() + 5)
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
    future = calls.add_local("a", deadline=time.time() + 5)
    calls.add_remote("b", deadline=time.time() + 5, reply_to="reply!2")
    remote = calls.fail_all(DeviceDisconnectedError())
    assert remote == [RemoteWaiter("b", "reply!2")]
    with pytest.raises(DeviceDisconnectedError):
        future.result()


def test_expired_remote_calls_are_swept_and_late_answers_dropped():
    calls = PendingCalls()
    calls.add_remote("old", deadline=time.time() - 1, reply_to="r")
    calls.add_remote("new", deadline=time.time() + 60, reply_to="r")
    assert calls.sweep_expired() == 1
    assert "old" not in calls
    assert "new" in calls
