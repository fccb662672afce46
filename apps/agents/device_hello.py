"""What a device's hello sets off in the agents app, checked together for the hellos that arrive together.

A reconnect storm (a network blip, a deploy) brings thousands of hellos within seconds, often several
of one user's devices. Each check joins its event loop's waiting batch; one task runs the whole batch
in a worker thread with one query (which of these devices have outbox items waiting; which agents of
these devices came due), so a user's devices share one check and a storm costs a few checks instead
of one per device. The first hello of a batch waits briefly for the others; while a batch runs, the
next one gathers.

A hello first learns which of the device's local runs are still running (their ``agent_run`` went out
on an earlier socket: the new one awaits their pieces as answers, so a reconnect does not make them
spend the frame budget) and whether its outbox holds anything (and flushes it, on its own socket),
then the agents that came due while the device was away start, as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection

from apps.core.errors import ApplicationError
from apps.core.group_commit import GroupCommit, loop_local

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


def _answers(work: BatchWork) -> Callable[[list[Pair]], list[bool]]:
    """A batch's flush: ``work`` gets each pair once and answers the pairs it found something for;
    each hello learns whether its own pair is among them."""

    def flush(pairs: list[Pair]) -> list[bool]:
        found = work(list(dict.fromkeys(pairs)))
        return [pair in found for pair in pairs]

    return flush


def _coalesced(work: BatchWork) -> Callable[[], GroupCommit[Pair, bool]]:
    # Off the thread the sockets' ORM calls share, so a batch and the hellos' device rows never queue
    # behind each other.
    return loop_local(
        lambda: GroupCommit(_answers(work), max_batch=HELLO_BATCH, gather_seconds=HELLO_GATHER_SECONDS, own_thread=True)
    )


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


def _runs_running(pairs: list[Pair]) -> list[list[str]]:
    from .selectors import local_runs_running_on

    running = local_runs_running_on(devices=pairs)
    return [running.get(pair, []) for pair in pairs]


_outbox_checks = _coalesced(_outboxes_waiting)
_due_checks = _coalesced(due_runs_start)
_running_checks = loop_local(
    lambda: GroupCommit(_runs_running, max_batch=HELLO_BATCH, gather_seconds=HELLO_GATHER_SECONDS, own_thread=True)
)


async def hello_runs_running(*, user_id, device_id: str) -> list[str]:
    """The ids of this device's local runs still running (checked with the other hellos arriving now)."""
    return await _running_checks().submit((str(user_id), device_id))


async def hello_outbox_waiting(*, user_id, device_id: str) -> bool:
    """Whether this device's outbox holds items (checked with the other hellos arriving now)."""
    return await _outbox_checks().submit((str(user_id), device_id))


async def hello_due_runs_start(*, user_id, device_id: str) -> bool:
    """Start this device's overdue agents (with the other hellos arriving now); whether any started."""
    return await _due_checks().submit((str(user_id), device_id))
