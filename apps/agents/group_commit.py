"""Group commit: many concurrent callers, one database round trip per batch.

A run's extractions and acknowledgements arrive one row at a time from many tasks; writing each on
its own costs a thread hop and a transaction per row. ``GroupCommit`` hands every value submitted
while the previous batch was being written to the next call of one synchronous ``flush`` (run
through ``database_sync_to_async``), and answers each caller with its own share of the result.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from channels.db import database_sync_to_async

In = TypeVar("In")
Out = TypeVar("Out")


class GroupCommit(Generic[In, Out]):
    """``flush(values)`` returns one result per value, in order; it raises for the whole batch."""

    def __init__(self, flush: Callable[[list[In]], Sequence[Out]], *, max_batch: int = 500) -> None:
        self._flush = database_sync_to_async(flush)
        self.max_batch = max_batch
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
        while self._waiting:
            batch, self._waiting = self._waiting[: self.max_batch], self._waiting[self.max_batch :]
            self.batches += 1
            try:
                results = await self._flush([value for value, _ in batch])
            except asyncio.CancelledError:
                for _, future in batch + self._waiting:
                    future.cancel()
                self._waiting = []
                raise
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
