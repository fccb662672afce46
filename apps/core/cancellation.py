"""Cancellations that libraries lose on CPython 3.11, and how a task still stops.

Two ways a task's cancellation goes missing under the libraries the project runs on:

- **turned into an ordinary error**: a redis-py read cancelled mid-reply can surface as a connection
  error. A loop that logs errors and carries on calls ``raise_if_cancelling`` in its handler.
- **dropped**: 3.11's ``asyncio.wait_for`` returns the awaited result when the cancellation came in
  the turn that result arrived. The task carries on, with nothing to catch. If it then blocks inside a
  library loop (channels-redis' receive pops again until a message comes), only a second cancellation
  ends it: ``task_stopped`` sends them until the task has ended. redis-py sent every command under
  ``wait_for``; ``apps.core.redis_sends`` now sends them under ``asyncio.timeout``, which keeps the
  cancellation, and the project's own waits use ``asyncio.timeout`` too (ruff's TID251 refuses
  ``asyncio.wait_for`` outside tests and benches). ``task_stopped`` stays for a library that drops
  one some other way.

Python 3.12's ``wait_for`` no longer drops them.
"""

from __future__ import annotations

import asyncio
import contextlib

# How long a cancelled task is waited for before it is cancelled again (task_stopped).
RECANCEL_SECONDS = 0.05


def raise_if_cancelling() -> None:
    """Re-raise a cancellation a library turned into an ordinary error: a loop that logs errors and
    carries on must still stop when its task is cancelled, or the event loop's shutdown waits for it
    forever."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError()


async def task_stopped(task: asyncio.Task) -> None:
    """Cancel ``task`` and wait until it has ended, cancelling it again every ``RECANCEL_SECONDS``
    while it has not (a cancellation dropped on its way, see the module). What it ended with is
    not raised."""
    task.cancel()
    while not task.done():
        await asyncio.wait([task], timeout=RECANCEL_SECONDS)
        task.cancel()
    with contextlib.suppress(BaseException):
        task.result()
