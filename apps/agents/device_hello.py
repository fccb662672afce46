"""What a device's hello sets off in the agents app, checked together for the hellos that arrive together.

A reconnect storm (a network blip, a deploy) brings thousands of hellos within seconds, often several
of one user's devices. Each check joins its event loop's waiting batch; one task runs the whole batch
in a worker thread with one query (which of these devices have outbox items waiting; which agents of
these devices came due), so a user's devices share one check and a storm costs a few checks instead
of one per device. The first hello of a batch waits briefly for the others; while a batch runs, the
next one gathers.

A hello first learns whether its outbox holds anything (and flushes it, on its own socket), then the
agents that came due while the device was away start, as before.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable, Collection
from typing import NamedTuple

from django.db import close_old_connections

from apps.core.errors import ApplicationError

from .error_codes import AgentsErrorCode

logger = logging.getLogger(__name__)

# Hellos checked in one query at most; a storm of thousands goes in a few.
HELLO_BATCH = 500
# How long the first hello of a batch waits for others to join it. Hellos reach here one after another
# (each first registers its device on the database), so without it a storm would still cost a check
# per device; half a second is nothing to an agent that came due while its device was away.
HELLO_GATHER_SECONDS = 0.5

Pair = tuple[str, str]  # (user_id, device_id)
BatchWork = Callable[[list[Pair]], Collection[Pair]]


class _Waiting(NamedTuple):
    pair: Pair
    done: asyncio.Future[bool]


class _Coalesced:
    """One event loop's waiting hellos for one kind of work; ``check`` answers whether the work
    found something for this device (the batch's result holds its pair)."""

    def __init__(self, work: BatchWork) -> None:
        self.work = work
        self.waiting: list[_Waiting] = []
        self.running = False

    def check(self, *, user_id: str, device_id: str) -> asyncio.Future[bool]:
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.waiting.append(_Waiting((str(user_id), device_id), done))
        if not self.running:
            self.running = True
            _keep(asyncio.ensure_future(self._run()))
        return done

    async def _run(self) -> None:
        try:
            await asyncio.sleep(HELLO_GATHER_SECONDS)  # the hellos arriving meanwhile join the batch
            while self.waiting:
                batch, self.waiting = self.waiting[:HELLO_BATCH], self.waiting[HELLO_BATCH:]
                pairs = list(dict.fromkeys(waiting.pair for waiting in batch))
                try:
                    # Off the event loop, and off the thread the sockets' ORM calls share.
                    found = await asyncio.to_thread(_closing, self.work, pairs)
                except Exception as exc:  # each waiting hello reports it
                    for waiting in batch:
                        if not waiting.done.done():
                            waiting.done.set_exception(exc)
                    continue
                for waiting in batch:
                    if not waiting.done.done():
                        waiting.done.set_result(waiting.pair in found)
        finally:
            self.running = False
            for waiting in self.waiting:  # cancelled with hellos still waiting: the loop is ending
                if not waiting.done.done():
                    waiting.done.cancel()
            self.waiting = []


def _closing(work: BatchWork, pairs: list[Pair]) -> Collection[Pair]:
    close_old_connections()
    try:
        return work(pairs)
    finally:
        close_old_connections()


def _outboxes_waiting(pairs: list[Pair]) -> Collection[Pair]:
    from .outbox import outbox_waiting_for

    return outbox_waiting_for(devices=pairs)


def due_runs_start(pairs: list[Pair]) -> Collection[Pair]:
    """Start a run of every agent of these devices that came due while they were away (``run_start``
    queues each run's executor once committed); returns the devices a run started for. One agent
    that fails to start is logged and does not keep the others from starting."""
    from .models import RunTrigger
    from .runs import run_start
    from .selectors import agents_due_for_devices

    started: set[Pair] = set()
    for config in agents_due_for_devices(devices=pairs):
        try:
            run_start(config=config, trigger=RunTrigger.DEVICE_CONNECT)
        except ApplicationError as exc:
            if exc.code != AgentsErrorCode.AGENT_ALREADY_RUNNING:
                logger.exception("agents: the overdue agent %s did not start on its device's hello", config.id)
            continue  # else the dispatcher (or another socket of the device) got there first
        except Exception:
            logger.exception("agents: the overdue agent %s did not start on its device's hello", config.id)
            continue
        started.add((str(config.user_id), config.device_id))
    return started


_outbox_checks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Coalesced] = weakref.WeakKeyDictionary()
_due_checks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Coalesced] = weakref.WeakKeyDictionary()
_running: set[asyncio.Future] = set()


def _keep(task: asyncio.Future) -> None:
    _running.add(task)
    task.add_done_callback(_running.discard)


def _loop_coalesced(registry: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Coalesced], work: BatchWork):
    loop = asyncio.get_running_loop()
    coalesced = registry.get(loop)
    if coalesced is None:
        coalesced = registry[loop] = _Coalesced(work)
    return coalesced


async def hello_outbox_waiting(*, user_id, device_id: str) -> bool:
    """Whether this device's outbox holds items (checked with the other hellos arriving now)."""
    return await _loop_coalesced(_outbox_checks, _outboxes_waiting).check(user_id=user_id, device_id=device_id)


async def hello_due_runs_start(*, user_id, device_id: str) -> bool:
    """Start this device's overdue agents (with the other hellos arriving now); whether any started."""
    return await _loop_coalesced(_due_checks, due_runs_start).check(user_id=user_id, device_id=device_id)
