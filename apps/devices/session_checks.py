"""The session checks of sockets connecting together, answered in one query per batch.

Every socket's token names a session the database must still hold unrevoked (``session_is_active``).
A reconnect storm brings thousands of those checks within seconds, and one query each kept the
database, not the event loop, busy: under a 2,000-device storm each simple check waited tens of
milliseconds behind the others, long enough for clients to give up before their handshake was
answered. Here each event loop keeps one batch in flight: the checks arriving while it runs wait
for it to end and then go together (up to ``BATCH``) in the next query. A lone connect waits for
nothing; a storm costs a few queries instead of one per socket.

The batch runs in a thread of the loop's default executor, not among the socket database threads
(``socket_db``): there the hellos' device rows of the sockets already accepted queue by the
hundred, and a check waiting behind them keeps the next sockets' handshakes unanswered.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import TYPE_CHECKING, NamedTuple

from channels.db import database_sync_to_async

from apps.accounts import tokens

if TYPE_CHECKING:
    from apps.accounts.models import User

# Sessions checked in one query at most.
BATCH = 500

Pair = tuple[str, str]  # (user id, session family id), canonical UUID strings


class _Waiting(NamedTuple):
    pair: Pair
    done: asyncio.Future[User | None]


class _Checks:
    """One event loop's waiting checks and whether a batch of them is in flight."""

    def __init__(self) -> None:
        self.waiting: list[_Waiting] = []
        self.running = False

    def ask(self, pair: Pair) -> asyncio.Future[User | None]:
        done: asyncio.Future[User | None] = asyncio.get_running_loop().create_future()
        self.waiting.append(_Waiting(pair, done))
        if not self.running:
            self.running = True
            _keep(asyncio.ensure_future(self._run()))
        return done

    async def _run(self) -> None:
        try:
            while self.waiting:
                batch, self.waiting = self.waiting[:BATCH], self.waiting[BATCH:]
                try:
                    found = await database_sync_to_async(_active_users, thread_sensitive=False)(
                        [waiting.pair for waiting in batch]
                    )
                except Exception as exc:  # each waiting socket fails as its own check would have
                    for waiting in batch:
                        if not waiting.done.done():
                            waiting.done.set_exception(exc)
                    continue
                for waiting in batch:
                    if not waiting.done.done():
                        waiting.done.set_result(found.get(waiting.pair))
        finally:
            self.running = False
            for waiting in self.waiting:  # cancelled with checks still waiting: the loop is ending
                if not waiting.done.done():
                    waiting.done.cancel()
            self.waiting = []


def _active_users(pairs: list[Pair]) -> dict[Pair, User]:
    return tokens.sessions_active_users(sessions=pairs)


_checks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Checks] = weakref.WeakKeyDictionary()
_running: set[asyncio.Future] = set()


def _keep(task: asyncio.Future) -> None:
    _running.add(task)
    task.add_done_callback(_running.discard)


async def session_user(*, user_id: str, family_id: str) -> User | None:
    """The active user of this unrevoked session, or None (checked with the others arriving now)."""
    loop = asyncio.get_running_loop()
    checks = _checks.get(loop)
    if checks is None:
        checks = _checks[loop] = _Checks()
    return await checks.ask((user_id, family_id))
