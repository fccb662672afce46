"""A run's live progress for the user's app: ``agent_progress`` frames to the sockets of the user
that negotiated the ``agent_progress`` capability, wherever they are held.

Throttled per run: a change is sent at once if the last frame of the run is at least
``MIN_INTERVAL`` old, otherwise it is folded into one trailing frame sent when the interval is up;
``finish`` always sends the final state. A frame that cannot be sent is lost, never the run's
problem: progress is a view, the run log is the record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from apps.devices.services import user_frame_broadcast

from .frames import AGENT_PROGRESS, AgentProgress

logger = logging.getLogger(__name__)

MIN_INTERVAL = 0.25  # seconds between two frames of one run: at most four a second


class RunProgress:
    def __init__(self, *, user_id, run_id, agent_id) -> None:
        self.user_id = str(user_id)
        self.run_id = str(run_id)
        self.agent_id = str(agent_id)
        self.phase = "reading"
        self.files_read = 0
        self.items_extracted = 0
        self.items_delivered = 0
        self.sent = 0  # frames handed to the broadcast (for tests and logs)
        self._last_sent: float | None = None  # monotonic time; None: nothing sent yet, so the next goes at once
        self._trailing: asyncio.TimerHandle | None = None
        self._sending: set[asyncio.Future] = set()
        self._finished = False

    def update(
        self, *, phase: str | None = None, files_read: int = 0, items_extracted: int = 0, items_delivered: int = 0
    ) -> None:
        """Add to the counters (and move to ``phase``); sends now or schedules the trailing frame."""
        if self._finished:
            return
        if phase is not None:
            self.phase = phase
        self.files_read += files_read
        self.items_extracted += items_extracted
        self.items_delivered += items_delivered
        # Not "0.0 + MIN_INTERVAL": the monotonic clock counts from the host's boot, which may be recent.
        wait = 0.0 if self._last_sent is None else self._last_sent + MIN_INTERVAL - time.monotonic()
        if wait <= 0:
            self._send_now()
        elif self._trailing is None:
            self._trailing = asyncio.get_running_loop().call_later(wait, self._send_trailing)

    def _send_trailing(self) -> None:
        self._trailing = None
        if not self._finished:
            self._send_now()

    def _frame(self) -> AgentProgress:
        return AgentProgress(
            run_id=self.run_id,
            agent_id=self.agent_id,
            phase=self.phase,  # type: ignore[arg-type]
            files_read=self.files_read,
            items_extracted=self.items_extracted,
            items_delivered=self.items_delivered,
        )

    def _send_now(self) -> None:
        self._last_sent = time.monotonic()
        self.sent += 1
        # Sent in order: each frame waits for the one before it.
        previous = list(self._sending)
        task = asyncio.ensure_future(self._broadcast(self._frame(), previous))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _broadcast(self, frame: AgentProgress, previous: list[asyncio.Future]) -> None:
        if previous:
            await asyncio.gather(*previous, return_exceptions=True)
        try:
            await user_frame_broadcast(user_id=self.user_id, frame=frame.model_dump(), capability=AGENT_PROGRESS)
        except Exception:
            logger.warning("agents: could not send the progress of run %s", self.run_id, exc_info=True)

    async def finish(self, *, items_delivered: int | None = None) -> None:
        """Send the final state (phase ``done``) and wait until every frame of the run is out.

        ``items_delivered``: the run's count of acknowledged inserts, which also counts its items a
        device's hello flush delivered while the run ran (this run's own counter does not see those).
        """
        if self._finished:
            return
        if items_delivered is not None:
            self.items_delivered = items_delivered
        if self._trailing is not None:
            self._trailing.cancel()
            self._trailing = None
        self.phase = "done"
        self._send_now()
        self._finished = True
        with contextlib.suppress(Exception):
            await asyncio.gather(*list(self._sending), return_exceptions=True)
