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

from typing import TYPE_CHECKING

from apps.accounts import tokens
from apps.core.group_commit import GroupCommit, loop_local

if TYPE_CHECKING:
    from apps.accounts.models import User

# Sessions checked in one query at most.
BATCH = 500

Pair = tuple[str, str]  # (user id, session family id), canonical UUID strings


def _active_users(pairs: list[Pair]) -> list[User | None]:
    found = tokens.sessions_active_users(sessions=list(dict.fromkeys(pairs)))
    return [found.get(pair) for pair in pairs]


_checks = loop_local(lambda: GroupCommit(_active_users, max_batch=BATCH, own_thread=True))


async def session_user(*, user_id: str, family_id: str) -> User | None:
    """The active user of this unrevoked session, or None (checked with the others arriving now)."""
    return await _checks().submit((user_id, family_id))
