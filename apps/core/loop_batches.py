"""What the requests on the server's loop ask in the same turn of the loop, sent as one batch.

Under load the requests a loop serves move in step: the answers to one round trip wake several of
them in the same turn, and each then asks the database or Redis for its next read. Sent one by one,
every read costs its own send, wakeup and receive, and on a box where system calls are slow those
cost more of the server's CPU than the reads themselves. An ``aiodataloader.DataLoader`` (the
DataLoader pattern, without its cache) collects the keys asked in one turn and hands them to one
batch function: one round trip for all of them, each caller awaiting its own answer (or its own
error, when the batch function answers an exception for that key). A request alone is a batch of
one, sent at the next turn.

One loader per loop and name: like the loop's pools, a loader is bound to the loop it was made on.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Coroutine, Hashable
from typing import Any

from aiodataloader import DataLoader


class _RunningLoopDataLoader(DataLoader[Any, Any]):
    """A ``DataLoader`` that does not hold its loop (it is always the running one): the loaders are
    kept per loop in a weak mapping, and a loader holding its loop would keep that entry forever."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    @loop.setter
    def loop(self, _loop: asyncio.AbstractEventLoop) -> None:
        pass  # DataLoader.__init__ sets the loop it was given


_loaders: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Hashable, DataLoader[Any, Any]]] = (
    weakref.WeakKeyDictionary()
)


def loop_loader(
    name: Hashable,
    batch: Callable[[list[Any]], Coroutine[Any, Any, list[Any]]],
    *,
    max_batch_size: int | None = None,
) -> DataLoader[Any, Any]:
    """This loop's loader called ``name``, made on first use with ``batch`` (keys in, one answer or
    exception per key out, in order) and batches of at most ``max_batch_size`` keys; a loader keeps
    the cap it was made with, so another cap (a setting changed) makes another loader."""
    loop = asyncio.get_running_loop()
    loaders = _loaders.setdefault(loop, {})
    loader = loaders.get((name, max_batch_size))
    if loader is None:
        loader = loaders[(name, max_batch_size)] = _RunningLoopDataLoader(
            batch, cache=False, max_batch_size=max_batch_size, loop=loop
        )
    return loader
