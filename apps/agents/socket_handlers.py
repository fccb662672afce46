"""The agents app on the device socket: ``agent_data`` / ``agent_complete`` in, and what happens when
a device says hello (its outbox is delivered, the agents that came due while it was away start).

Frames are checked here, in the process holding the socket — the run must exist, be this user's,
be running, and have been sent to this device — and then forwarded over the channel layer to the
run's executor (``local_runs.run_channel``). Nothing is stored from a rejected frame.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import weakref

from channels.db import database_sync_to_async
from channels.exceptions import ChannelFull

from apps.core.errors import ApplicationError
from apps.devices.channel_layer import loop_layer
from apps.devices.handlers import DeviceSession

from .device_hello import hello_due_runs_start, hello_outbox_waiting, hello_runs_running
from .error_codes import AgentsErrorCode
from .frames import AgentComplete, AgentData
from .local_runs import MSG_COMPLETE, MSG_DATA, run_channel
from .models import AgentRunLog, AgentType, RunStatus
from .outbox import outbox_flush_for_device

logger = logging.getLogger(__name__)

AGENT_RUN = "agent_run"  # the outgoing frame a run's pieces answer (registered in AppConfig.ready)
FORWARD_ATTEMPTS = 50  # times FORWARD_BACKOFF: how long a piece waits for a full run channel
FORWARD_BACKOFF = 0.2

# One lock per run and process: the frames of a run reach its executor in the order they arrived
# (each frame is handled in its own task; asyncio locks are FIFO).
_run_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()


def run_accepting_frames(*, user_id, device_id: str, run_id: str) -> AgentRunLog:
    """The running local run ``run_id`` of this user, sent to this device; else a stable error."""
    try:
        key = uuid.UUID(run_id)
    except ValueError:
        key = None
    run = (
        AgentRunLog.objects.filter(id=key, user_id=user_id, agent_type=AgentType.LOCAL).first()
        if key is not None
        else None
    )
    if run is None:
        raise ApplicationError(AgentsErrorCode.AGENT_RUN_NOT_FOUND, "No agent run has this run_id.", status=404)
    if run.status != RunStatus.RUNNING:
        raise ApplicationError(
            AgentsErrorCode.AGENT_RUN_FINISHED, f"This agent run has already ended ({run.status}).", status=409
        )
    if run.device_id and run.device_id != device_id:
        raise ApplicationError(
            AgentsErrorCode.AGENT_RUN_WRONG_DEVICE, "This agent run was sent to another device.", status=403
        )
    return run


async def _forward(session: DeviceSession, run_id: str, message: dict) -> None:
    lock = _run_locks.get(run_id)
    if lock is None:
        lock = _run_locks[run_id] = asyncio.Lock()
    async with lock:
        run = await database_sync_to_async(run_accepting_frames)(
            user_id=session.user_id, device_id=session.device_id, run_id=run_id
        )
        layer = loop_layer()
        for _attempt in range(FORWARD_ATTEMPTS):
            try:
                await layer.send(run_channel(run.id), message)
                return
            except ChannelFull:
                await asyncio.sleep(FORWARD_BACKOFF)
        raise ApplicationError(
            AgentsErrorCode.AGENT_RUN_BUSY, "The agent run is not keeping up; send this piece again.", status=503
        )


async def handle_agent_data(session: DeviceSession, frame: AgentData) -> None:
    files = [file.model_dump() for file in frame.files]
    await _forward(session, frame.run_id, {"type": MSG_DATA, "files": files})


async def handle_agent_complete(session: DeviceSession, frame: AgentComplete) -> None:
    errors = [str(error)[:500] for error in frame.errors]
    await _forward(session, frame.run_id, {"type": MSG_COMPLETE, "files_read": frame.files_read, "errors": errors})


# --- device hello ---------------------------------------------------------------------------------


async def runs_reopen(session: DeviceSession) -> None:
    """The device's calls reopener (``register_calls_reopener``): this socket awaits the pieces of the
    device's runs still running, whose ``agent_run`` went out on an earlier socket (pieces arriving
    meanwhile wait for it); a failure only costs them their exemption from the frame budget."""
    try:
        running = await hello_runs_running(user_id=session.user_id, device_id=session.device_id)
    except Exception:
        logger.exception("agents: the running runs of device %s were not re-opened on its hello", session.device_id)
        return
    for run_id in running:
        session.call_opened(AGENT_RUN, run_id)


async def on_device_hello(session: DeviceSession) -> None:
    # The checks are shared with the other hellos arriving now (device_hello): a reconnect storm
    # costs a few queries, not one per device. The running runs are re-opened beside this
    # (``runs_reopen``, the device's calls reopener).
    if await hello_outbox_waiting(user_id=session.user_id, device_id=session.device_id):
        report = await outbox_flush_for_device(user_id=session.user_id, device_id=session.device_id)
        if report.delivered or report.undelivered:
            logger.info(
                "agents: outbox of device %s: %d delivered, %d still pending",
                session.device_id,
                report.delivered,
                report.undelivered,
            )
    await hello_due_runs_start(user_id=session.user_id, device_id=session.device_id)
