"""Socket door of the assistant: the ``home_request`` / ``floating_request`` frame handlers.

The devices consumer runs each request frame as its own task (so several run at once per
socket) and cancels it on a ``cancel`` frame. Every request ends with exactly one
``stream_end``: after the answer; after an ``error`` frame when something failed; or marked
``cancelled`` when the client cancelled it. Device faults the tools met (timeout, offline,
client error) are reported as ``error`` frames before ``stream_end`` while the model still
explains them in the text.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from django.conf import settings

from apps.core import metrics
from apps.core.errors import ApplicationError
from apps.devices.errors import DeviceCallError

from .error_codes import AssistantErrorCode
from .kinds import ChatKind
from .services import chat_run

logger = logging.getLogger(__name__)


class FrameSink:
    """Sends one request's frames on the device session."""

    def __init__(self, session: Any, request_id: str) -> None:
        self.session = session
        self.request_id = request_id
        self.mutations: list[dict[str, Any]] = []
        self.ended = False
        self.first_token = metrics.FirstTokenClock(kind="socket")

    async def domain(self, domain: str) -> None:
        await self.session.send({"type": "floating_domain", "request_id": self.request_id, "domain": domain})

    async def start(self) -> None:
        await self.session.send({"type": "stream_start", "request_id": self.request_id})

    async def text(self, chunk: str) -> None:
        self.first_token.tick()
        await self.session.send({"type": "stream_text", "request_id": self.request_id, "chunk": chunk})

    async def error(self, code: str, message: str, **extra: Any) -> None:
        frame = {"type": "error", "request_id": self.request_id, "code": code, "message": message}
        await self.session.send({**frame, **extra})

    async def end(self, *, cancelled: bool = False) -> None:
        if self.ended:
            return
        self.ended = True
        frame: dict[str, Any] = {"type": "stream_end", "request_id": self.request_id, "mutations": self.mutations}
        if cancelled:
            frame["cancelled"] = True
        await self.session.send(frame)


def _frame_dict(frame: Any) -> dict[str, Any]:
    return frame.model_dump() if hasattr(frame, "model_dump") else dict(frame)


async def _handle(session: Any, frame: Any, *, kind: ChatKind) -> None:
    data = _frame_dict(frame)
    sink = FrameSink(session, data["request_id"])
    try:
        async with asyncio.timeout(settings.ASSISTANT_REQUEST_TIMEOUT):
            outcome = await chat_run(
                user_id=session.user_id,
                kind=kind,
                message=data.get("message"),
                request_id=sink.request_id,
                sink=sink,
                history=data.get("conversation_history"),
                scope=data.get("scope"),
                device_id=session.device_id,
                session_id=f"device:{session.device_id}",
            )
        sink.mutations = outcome.mutations
        for code, message in _fault_reports(outcome.faults):
            await sink.error(code, message)
        await sink.end()
        await outcome.remembered_wait()  # after the end: the client does not wait for the episode
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await sink.end(cancelled=True)
        raise
    except DeviceCallError:
        # The socket itself went away: there is no one left to tell.
        logger.info("request %s ended: device gone", sink.request_id)
    except ApplicationError as exc:
        await _fail(sink, exc.code, exc.message, **_frame_extra(exc))
    except TimeoutError:
        await _fail(sink, AssistantErrorCode.REQUEST_TIMEOUT, "The assistant did not finish in time; please try again.")
    except Exception:
        logger.exception("assistant request %s failed", sink.request_id)
        await _fail(sink, AssistantErrorCode.INTERNAL_ERROR, "The assistant failed on this request; please try again.")


def _fault_reports(faults: list[DeviceCallError]) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for fault in faults:
        seen.setdefault(fault.code, fault.message)
    return list(seen.items())


def _frame_extra(exc: ApplicationError) -> dict[str, Any]:
    """The error's details an ``error`` frame carries beside code and message (a budget's renewal, the upgrade)."""
    return {key: exc.extra[key] for key in ("resets_at", "upgrade_tier") if exc.extra.get(key) is not None}


async def _fail(sink: FrameSink, code: str, message: str, **extra: Any) -> None:
    with contextlib.suppress(DeviceCallError):
        await sink.error(str(code), message, **extra)
        await sink.end()


async def handle_home_request(session: Any, frame: Any) -> None:
    await _handle(session, frame, kind=ChatKind.HOME)


async def handle_floating_request(session: Any, frame: Any) -> None:
    await _handle(session, frame, kind=ChatKind.FLOATING)
