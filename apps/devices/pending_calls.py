"""The tool calls a socket has sent and not yet seen answered, by call id.

A call is either awaited on the socket's own loop (a future) or by a caller elsewhere, answered
on that caller's node (see node.py); the table resolves, expires and fails them.

Every socket has a table and most have no call in flight: such a table holds no dict of its own (one
shared, never written empty one); a dict is made by the first call and dropped by the first sweep
(``sweep_expired``, each presence flush) that finds none in flight.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, NamedTuple


@dataclass
class PendingCall:
    deadline: float  # unix time
    future: asyncio.Future | None = None  # a caller on this loop
    reply_to: str | None = None  # the node of a caller elsewhere


class RemoteWaiter(NamedTuple):
    call_id: str
    reply_to: str


# Read by every table with no call in flight; never written (a first call swaps it for a dict of its own).
_NONE: dict[str, PendingCall] = {}


class PendingCalls:
    __slots__ = ("_calls",)

    def __init__(self) -> None:
        self._calls = _NONE

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._calls

    def __len__(self) -> int:
        return len(self._calls)

    def add_local(self, call_id: str, *, deadline: float) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        calls = self._calls
        if calls is _NONE:
            calls = self._calls = {}
        calls[call_id] = PendingCall(deadline=deadline, future=future)
        return future

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
