"""A transaction held open on a thread of its own, as another request's long transaction would be:
for tests of what waits behind a lock, and what must not."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable


@contextlib.asynccontextmanager
async def held_transaction(work: Callable[[], object], *, what: str = "") -> AsyncIterator[Callable[[], None]]:
    """Run ``work`` in a transaction on a thread of its own and keep the transaction open; yields
    ``release``, to commit it before the block ends. On leaving, the transaction commits (if still
    open) and the thread is joined. ``what`` names the work in the failure if it never finishes."""
    done, release = threading.Event(), threading.Event()

    def hold() -> None:
        from django.db import connection, transaction

        try:
            with transaction.atomic():
                work()
                done.set()
                release.wait(20)
        finally:
            connection.close()

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    try:
        assert await asyncio.to_thread(done.wait, 10), f"the held transaction never got through: {what or work}"
        yield release.set
    finally:
        release.set()
        await asyncio.to_thread(holder.join, 10)


def statement(sql: str, params: list | None = None) -> Callable[[], None]:
    """``work`` for ``held_transaction``: one SQL statement (a lock)."""

    def run() -> None:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(sql, params or [])

    return run
