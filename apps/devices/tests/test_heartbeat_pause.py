"""The heartbeat and a socket that has stopped reading (its answer handlers are full): the pong it
cannot read is not held against it, and its deadline moves by the time it waited unread."""

from __future__ import annotations

import time

import pytest

from apps.devices import connections, heartbeat


class Socket:
    """What the heartbeat reads and calls on a socket."""

    def __init__(self, device_id: str, *, pong_due: float) -> None:
        self.user_id = "u"
        self.device_id = device_id
        self.pong_due = pong_due
        self.reading_paused_at = 0.0
        self.missed = False
        self.stalled = False

    def heartbeat_missed(self) -> None:
        self.missed = True

    def reading_stalled(self) -> None:
        self.stalled = True


@pytest.fixture
def pong_timeout(settings):
    settings.DEVICE_PONG_TIMEOUT = 10.0
    return 10.0


def test_a_pong_owed_from_before_the_pause_gets_the_time_paused(pong_timeout, monkeypatch):
    # given a ping at 100 (pong due at 110), a pause from 105 to 125
    clock = [105.0]
    monkeypatch.setattr(heartbeat.time, "monotonic", lambda: clock[0])
    socket = Socket("a", pong_due=110.0)
    with heartbeat.reading_paused(socket):
        assert socket.reading_paused_at == 105.0
        clock[0] = 125.0
    # then the pong is due 20 s later than it was, and the socket reads again
    assert socket.pong_due == 130.0
    assert socket.reading_paused_at == 0.0


def test_a_ping_sent_during_the_pause_gets_a_whole_pong_timeout_after_it(pong_timeout, monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(heartbeat.time, "monotonic", lambda: clock[0])
    socket = Socket("a", pong_due=0.0)
    with heartbeat.reading_paused(socket):
        socket.pong_due = 112.0 + pong_timeout  # pinged at 112
        clock[0] = 130.0
    assert socket.pong_due == 130.0 + pong_timeout


def test_a_pong_overdue_before_the_pause_is_not_excused(pong_timeout, monkeypatch):
    clock = [120.0]
    monkeypatch.setattr(heartbeat.time, "monotonic", lambda: clock[0])
    socket = Socket("a", pong_due=110.0)
    with heartbeat.reading_paused(socket):
        clock[0] = 140.0
    assert socket.pong_due == 110.0


async def test_the_heartbeat_closes_a_silent_socket_but_not_one_that_stopped_reading_before_its_deadline():
    # given two sockets whose pongs are overdue: one reads, one stopped reading before its deadline,
    # and a third that stopped reading only after its deadline had passed
    now = time.monotonic()
    silent = Socket("silent", pong_due=now - 1.0)
    paused = Socket("paused", pong_due=now - 1.0)
    paused.reading_paused_at = now - 2.0
    late = Socket("late", pong_due=now - 1.0)
    late.reading_paused_at = now - 0.5
    for socket in (silent, paused, late):
        connections.register(socket)
    try:
        # when the heartbeat looks for overdue pongs
        check_again = heartbeat._close_silent(now)
    finally:
        for socket in (silent, paused, late):
            connections.unregister(socket)
    # then only the paused one is spared, and looked at again soon
    assert silent.missed
    assert late.missed
    assert not paused.missed
    assert paused.pong_due == now - 1.0
    assert check_again == now + 1.0


async def test_a_pause_longer_than_the_limit_is_no_longer_excused(settings):
    # given a limit of twice the tool-call timeout (20 s), and two sockets whose pongs are overdue,
    # paused since before their deadlines: one for longer than the limit
    settings.DEVICE_TOOL_CALL_TIMEOUT = 10.0
    now = time.monotonic()
    stuck = Socket("stuck", pong_due=now - 1.0)
    stuck.reading_paused_at = now - 21.0
    paused = Socket("paused", pong_due=now - 1.0)
    paused.reading_paused_at = now - 19.0
    for socket in (stuck, paused):
        connections.register(socket)
    try:
        # when the heartbeat looks for overdue pongs
        heartbeat._close_silent(now)
    finally:
        for socket in (stuck, paused):
            connections.unregister(socket)
    # then the socket stuck past the limit is closed as stalled, the other is still spared
    assert stuck.stalled
    assert not stuck.missed
    assert not paused.stalled
    assert not paused.missed
