"""The tool calls a socket has sent and not yet seen answered, by call id.

A call is either awaited on the socket's own loop (a future) or by a caller elsewhere, answered
on that caller's node (see node.py); the table resolves, expires and fails them.

Local calls share one deadline timer per table, armed for the earliest of them: a timer per call
(made and cancelled on every call) cost uvloop several times a call's own bookkeeping.

Every socket has a table and most have no call in flight: such a table holds no dict of its own (one
shared, never written empty one); a dict is made by the first call and dropped by the first sweep
(``sweep_expired``, each presence flush) that finds none in flight.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, NamedTuple

from .errors import DeviceTimeoutError


@dataclass
class PendingCall:
    deadline: float  # a remote caller's: unix time (it crosses processes); a local one's: the loop's clock
    future: asyncio.Future | None = None  # a caller on this loop
    reply_to: str | None = None  # the node of a caller elsewhere


class RemoteWaiter(NamedTuple):
    call_id: str
    reply_to: str


# Read by every table with no call in flight; never written (a first call swaps it for a dict of its own).
_NONE: dict[str, PendingCall] = {}


# A local call this close to its deadline when the timer runs is expired with it (a loop may run a
# timer up to its clock's resolution early).
_EARLY = 0.001


class PendingCalls:
    __slots__ = ("_calls", "_timer")

    def __init__(self) -> None:
        self._calls = _NONE
        self._timer: asyncio.TimerHandle | None = None  # due at the earliest local deadline, if armed

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._calls

    def __len__(self) -> int:
        return len(self._calls)

    def add_local(self, call_id: str, *, timeout: float) -> asyncio.Future:
        """A call awaited on this loop: its future, failed with DeviceTimeoutError after ``timeout``
        seconds unless resolved first."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        due = loop.time() + timeout
        calls = self._calls
        if calls is _NONE:
            calls = self._calls = {}
        calls[call_id] = PendingCall(deadline=due, future=future)
        timer = self._timer
        if timer is None or due < timer.when():
            if timer is not None:
                timer.cancel()
            self._timer = loop.call_at(due, self._expire_local)
        return future

    def _expire_local(self) -> None:
        """The earliest local deadline is due: fail the local calls past theirs, wait for the next."""
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time() + _EARLY
        expired: list[str] = []
        next_due: float | None = None
        for call_id, call in self._calls.items():
            if call.future is None:
                continue
            if call.deadline <= now:
                expired.append(call_id)
            elif next_due is None or call.deadline < next_due:
                next_due = call.deadline
        for call_id in expired:
            future = self._calls.pop(call_id).future
            if future is not None and not future.done():
                future.set_exception(DeviceTimeoutError())
        if next_due is not None:
            self._timer = loop.call_at(next_due, self._expire_local)

    def add_remote(self, call_id: str, *, deadline: float, reply_to: str) -> None:
        calls = self._calls
        if calls is _NONE:
            calls = self._calls = {}
        calls[call_id] = PendingCall(deadline=deadline, reply_to=reply_to)

    def forget(self, call_id: str) -> None:
        self._calls.pop(call_id, None)

    def resolve(self, call_id: str, result: Any) -> str | None:
        """Hand ``result`` to a local waiter; return the node of a remote one still in time."""
        call = self._calls.pop(call_id, None)
        if call is None:
            return None  # late (the caller gave up) or unknown
        if call.future is not None:
            if not call.future.done():
                call.future.set_result(result)
            return None
        return call.reply_to if call.deadline >= time.time() else None

    def fail_all(self, error: BaseException) -> list[RemoteWaiter]:
        """Fail every local waiter with ``error``; return the remote waiters to tell."""
        calls, self._calls = self._calls, _NONE
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        remote = []
        for call_id, call in calls.items():
            if call.future is not None:
                if not call.future.done():
                    call.future.set_exception(error)
            elif call.reply_to is not None:
                remote.append(RemoteWaiter(call_id, call.reply_to))
        return remote

    def sweep_expired(self, now: float | None = None) -> int:
        """Drop remote calls past their deadline (their callers gave up); return how many."""
        now = time.time() if now is None else now
        expired = [cid for cid, call in self._calls.items() if call.reply_to and call.deadline < now]
        for call_id in expired:
            del self._calls[call_id]
        if not self._calls:
            # None in flight: nothing kept for the idle socket. Here (each presence flush), not as the
            # last call is answered: a socket called one call at a time would make a dict per call.
            self._calls = _NONE
        return len(expired)
