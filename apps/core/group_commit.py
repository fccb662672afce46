"""Group commit: many concurrent callers, one database round trip per batch.

A run's extractions and acknowledgements, the hellos of a reconnect storm and the session checks of
sockets connecting together all arrive one at a time from many tasks; answering each on its own
costs a thread hop and a query per caller. ``GroupCommit`` hands every value submitted while the
previous batch was being written to the next call of one synchronous ``flush`` (run through
``database_sync_to_async``, which closes stale connections around it), and answers each caller with
its own share of the result. ``loop_local`` keeps one per event loop, for the module-level ones a
process's sockets share.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from channels.db import database_sync_to_async

In = TypeVar("In")
Out = TypeVar("Out")
T = TypeVar("T")


class GroupCommit(Generic[In, Out]):
    """``flush(values)`` returns one result per value, in order; it raises for the whole batch.

    ``gather_seconds``: how long the first value of a batch waits for others to join it (for callers
    that arrive one after another rather than together). ``pace_seconds``: a batch starts at least
    this long after the one before it started, so a steady stream of values makes a few large batches
    rather than one small batch per flush's round trip (for values whose callers do not wait on the
    result to go on). ``own_thread``: run ``flush`` in the default executor instead of the thread the
    process's ORM calls share, so a batch never queues behind them (nor they behind it).
    """

    def __init__(
        self,
        flush: Callable[[list[In]], Sequence[Out]],
        *,
        max_batch: int = 500,
        gather_seconds: float = 0.0,
        pace_seconds: float = 0.0,
        own_thread: bool = False,
    ) -> None:
        self._flush = database_sync_to_async(flush, thread_sensitive=not own_thread)
        self.max_batch = max_batch
        self.gather_seconds = gather_seconds
        self.pace_seconds = pace_seconds
        self._started = -pace_seconds  # when the last batch started (time.monotonic), for the pace
        self._waiting: list[tuple[In, asyncio.Future[Out]]] = []
        self._writer: asyncio.Task | None = None
        self.batches = 0  # flushes made (for tests and benchmarks)

    def submit(self, value: In) -> asyncio.Future[Out]:
        """Queue ``value`` for the next batch; the future holds its result (or the batch's error)."""
        future: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        self._waiting.append((value, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._write())
        return future

    async def _write(self) -> None:
        try:
            if self.gather_seconds:
                await asyncio.sleep(self.gather_seconds)  # the values arriving meanwhile join the batch
            while self._waiting:
                if self.pace_seconds:
                    wait = self._started + self.pace_seconds - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)  # the values arriving meanwhile join the batch
                    self._started = time.monotonic()
                batch, self._waiting = self._waiting[: self.max_batch], self._waiting[self.max_batch :]
                self.batches += 1
                try:
                    results = await self._flush([value for value, _ in batch])
                except asyncio.CancelledError:
                    self._waiting = batch + self._waiting
                    raise
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        except asyncio.CancelledError:
            # The loop is ending: every caller still waiting is cancelled with it.
            for _, future in self._waiting:
                future.cancel()
            self._waiting = []
            raise


def loop_local(factory: Callable[[], T]) -> Callable[[], T]:
    """A getter of one ``factory()`` per running event loop (a process can run several: tests, an
    embedded server beside a worker), let go with its loop."""
    made: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = weakref.WeakKeyDictionary()

    def get() -> T:
        loop = asyncio.get_running_loop()
        found = made.get(loop)
        if found is None:
            found = made[loop] = factory()
        return found

    return get
