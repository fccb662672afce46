"""Frame intake of the device socket: from the raw text of one WebSocket message to a validated
frame, a rejection (a stable error code for the client) or a drop (over the frame budget).

Plain Python, no socket: ``frame_intake`` spends the budget before any parsing, then checks size,
JSON, type, text and the frame's model, in that order. The consumer only acts on the outcome.

The text rule is the REST parser's (``apps.core.parsers``) and holds for every field of every frame
type, keys included: no NUL (PostgreSQL text refuses it) and no unpaired surrogate (no UTF-8
encoder accepts it: not the database, Redis, a log line or the model client).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from .error_codes import DevicesErrorCode
from .frames import is_incoming_type, parse_incoming, parse_json
from .rate_limit import FrameBudget, Verdict, frame_cost


class BudgetOutcome(Enum):
    SPENT = "spent"  # the frame paid its cost
    ANSWER = "answer"  # over budget, but an answer to one of our own calls: never dropped
    DROP = "drop"
    DROP_AND_WARN = "drop_and_warn"  # the first drop of a flood: tell the client to slow down
    CLOSE = "close"  # the flood went on: close the socket


@dataclass(frozen=True)
class BudgetVerdict:
    outcome: BudgetOutcome
    parsed: Any = None  # the already parsed answer (``ANSWER`` only)

    @property
    def admitted(self) -> bool:
        return self.outcome in (BudgetOutcome.SPENT, BudgetOutcome.ANSWER)


_SPENT = BudgetVerdict(BudgetOutcome.SPENT)
_DROPS = {Verdict.DROP: BudgetOutcome.DROP, Verdict.DROP_AND_WARN: BudgetOutcome.DROP_AND_WARN}


class AwaitedAnswers(Protocol):
    """What the socket awaits answers to (``answer_frames.AnswerBook``)."""

    def awaits_answers(self) -> bool: ...

    def is_answer(self, raw: Mapping[str, Any]) -> bool: ...

    def answer_admitted(self, raw: Mapping[str, Any]) -> None: ...


def budget_verdict(
    budget: FrameBudget,
    text_data: str | None,
    size: int,
    *,
    awaited: AwaitedAnswers,
    max_bytes: int,
) -> BudgetVerdict:
    """Spend the frame's cost before any parsing (an answer gets it back once it is known to be one)."""
    cost = frame_cost(size)
    if budget.spend(cost):
        return _SPENT
    # Answers to the server's own calls are bounded by the server: never dropped. Only parsed
    # when such calls are open and the frame is small enough to be one.
    if awaited.awaits_answers() and text_data is not None and size <= max_bytes:
        with contextlib.suppress(ValueError):
            raw = parse_json(text_data)
            if isinstance(raw, dict) and awaited.is_answer(raw):
                return BudgetVerdict(BudgetOutcome.ANSWER, raw)
    verdict = budget.take(cost)
    return BudgetVerdict(_DROPS.get(verdict, BudgetOutcome.CLOSE))


# Both can only arrive as a JSON escape (``\u0000``, ``\ud800``): frames without ``\u`` skip the walk.
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


def unstorable_text_at(raw: Any) -> str | None:
    """The path (``files.0.name``) of the first string holding NUL or an unpaired surrogate, else None."""
    stack: list[tuple[Any, str]] = [(raw, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                where = f"{path}.{key}" if path else str(key)
                if _UNSTORABLE.search(key):
                    return path or "(key)"
                stack.append((child, where))
        elif isinstance(item, list):
            stack.extend((child, f"{path}.{i}" if path else str(i)) for i, child in enumerate(item))
        elif isinstance(item, str) and _UNSTORABLE.search(item):
            return path
    return None


@dataclass(frozen=True)
class Accepted:
    frame: BaseModel
    frame_type: str
    answer: bool = False  # answers one of the server's own calls (it spent no budget)


@dataclass(frozen=True)
class Rejected:
    code: DevicesErrorCode
    message: str
    request_id: str | None = None


@dataclass(frozen=True)
class Dropped:
    verdict: BudgetVerdict


Intake = Accepted | Rejected | Dropped


def frame_intake(
    text_data: str | None,
    bytes_data: bytes | None,
    *,
    budget: FrameBudget,
    max_bytes: int,
    awaited: AwaitedAnswers,
) -> Intake:
    """``awaited``: what the socket awaits answers to; an answer spends no budget and is never dropped."""
    size = len(text_data) if text_data is not None else len(bytes_data or b"")
    verdict = budget_verdict(budget, text_data, size, awaited=awaited, max_bytes=max_bytes)
    if not verdict.admitted:
        return Dropped(verdict)
    if text_data is None:
        return Rejected(DevicesErrorCode.MALFORMED_FRAME, "Frames are JSON text, not binary.")
    if size > max_bytes or (size * 4 > max_bytes and len(text_data.encode()) > max_bytes):
        return Rejected(DevicesErrorCode.FRAME_TOO_LARGE, f"Frames are limited to {max_bytes} bytes.")
    raw = verdict.parsed
    if raw is None:
        try:
            raw = parse_json(text_data)
        except ValueError:
            return Rejected(DevicesErrorCode.MALFORMED_FRAME, "The frame is not valid JSON.")
    frame_type = raw.get("type") if isinstance(raw, dict) else None
    if not is_incoming_type(frame_type):
        return Rejected(DevicesErrorCode.UNKNOWN_FRAME_TYPE, f"Unknown frame type {frame_type!r}.")
    if "\\u" in text_data:
        where = unstorable_text_at(raw)
        if where is not None:
            request_id = raw.get("request_id")
            clean_id = isinstance(request_id, str) and unstorable_text_at(request_id) is None
            return Rejected(
                DevicesErrorCode.INVALID_FRAME,
                f"Invalid {frame_type} frame: {where}: text must not contain NUL or an unpaired surrogate.",
                request_id=request_id if clean_id else None,
            )
    try:
        frame = parse_incoming(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"][1:]) or frame_type
        request_id = raw.get("request_id")
        return Rejected(
            DevicesErrorCode.INVALID_FRAME,
            f"Invalid {frame_type} frame: {where}: {error['msg']}",
            request_id=request_id if isinstance(request_id, str) else None,
        )
    if verdict.outcome is BudgetOutcome.ANSWER or awaited.is_answer(raw):
        # The server's own calls bound their answers: the client's budget is left to the client.
        if verdict.outcome is BudgetOutcome.SPENT:
            budget.refund(frame_cost(size))
        awaited.answer_admitted(raw)
        return Accepted(frame, str(frame_type), answer=True)
    return Accepted(frame, str(frame_type))
