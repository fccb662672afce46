"""Frame intake of the device socket: from the raw text of one WebSocket message to a validated
frame, a rejection (a stable error code for the client) or a drop (over the frame budget).

Plain Python, no socket: ``frame_intake`` spends the budget before any other parsing (only while the
socket awaits answers is a small frame's JSON read first, to tell an answer, which spends nothing),
then checks size, JSON, type, text and the frame's model, in that order. The consumer only acts on
the outcome.

The text rule is the REST parser's (``apps.core.parsers``) and holds for every field of every frame
type, keys included: no NUL (PostgreSQL text refuses it) and no unpaired surrogate (no UTF-8
encoder accepts it: not the database, Redis, a log line or the model client).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from enum import Enum
from typing import Any, NamedTuple, Protocol

from pydantic import BaseModel, ValidationError

from .error_codes import DevicesErrorCode
from .frames import is_incoming_type, parse_incoming, parse_json
from .rate_limit import FrameBudget, Verdict, frame_cost


class BudgetOutcome(Enum):
    SPENT = "spent"  # the frame paid its cost
    ANSWER = "answer"  # an answer to one of our own calls: charged nothing, never dropped
    DROP = "drop"
    DROP_AND_WARN = "drop_and_warn"  # the first drop of a flood: tell the client to slow down
    CLOSE = "close"  # the flood went on: close the socket


# The outcomes are named tuples, not frozen dataclasses: each frame makes one or two, and a frozen
# dataclass costs about three times as much to make (its __init__ goes through object.__setattr__).
class BudgetVerdict(NamedTuple):
    outcome: BudgetOutcome
    parsed: Any = None  # the frame's JSON, if it was read to tell whether it is an answer

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
    """An answer to one of the server's own calls spends nothing; any other frame spends its cost
    before its fields are looked at (a frame already parsed to tell is handed on in ``parsed``)."""
    parsed = None
    # Answers to the server's own calls are bounded by the server: never charged, never dropped.
    # Only parsed when such calls are open and the frame is small enough to be one.
    if text_data is not None and size <= max_bytes and awaited.awaits_answers():
        with contextlib.suppress(ValueError):
            parsed = parse_json(text_data)
            if isinstance(parsed, dict) and awaited.is_answer(parsed):
                return BudgetVerdict(BudgetOutcome.ANSWER, parsed)
    cost = frame_cost(size)
    if budget.spend(cost):
        return _SPENT if parsed is None else BudgetVerdict(BudgetOutcome.SPENT, parsed)
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


class Accepted(NamedTuple):
    frame: BaseModel
    frame_type: str
    answer: bool = False  # answers one of the server's own calls (it spent no budget)


class Rejected(NamedTuple):
    code: DevicesErrorCode
    message: str
    request_id: str | None = None


class Dropped(NamedTuple):
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
    answer = verdict.outcome is BudgetOutcome.ANSWER
    intake = _checked(text_data, size, verdict.parsed, max_bytes=max_bytes, answer=answer)
    if answer:
        if isinstance(intake, Accepted):
            # The server's own calls bound their answers: the client's budget is left to the client.
            awaited.answer_admitted(verdict.parsed)
        else:
            budget.spend(frame_cost(size))  # a broken answer pays as any other frame (if it can)
    return intake


def _checked(text_data: str | None, size: int, raw: Any, *, max_bytes: int, answer: bool) -> Accepted | Rejected:
    """Size, JSON (``raw``: already parsed, if it was), type, text and model, in that order."""
    if text_data is None:
        return Rejected(DevicesErrorCode.MALFORMED_FRAME, "Frames are JSON text, not binary.")
    if size > max_bytes or (size * 4 > max_bytes and len(text_data.encode()) > max_bytes):
        return Rejected(DevicesErrorCode.FRAME_TOO_LARGE, f"Frames are limited to {max_bytes} bytes.")
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
    return Accepted(frame, str(frame_type), answer=answer)
