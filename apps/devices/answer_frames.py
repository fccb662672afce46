"""Answer frames: incoming frames that answer a frame the server sent this socket (a local run's
``agent_data`` answers its ``agent_run``), so the client's frame budget neither pays for nor drops them.

A higher app declares them (``register_answer_frame``, from ``AppConfig.ready``); each socket keeps
the calls it has opened and not yet seen closed (``OpenCalls``, capped). Plain Python, no socket.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

# Far more than one device runs at once; past it the oldest call loses its exemption, nothing else.
OPEN_CALLS_CAP = 64


class AnswerOf(NamedTuple):
    opened_by: str  # the outgoing frame type that asks for the answer
    key: str  # the field naming the call, on the outgoing frame and on its answers
    closes: bool = False  # this answer is the last one (the call is closed once it is admitted)


_answers: dict[str, AnswerOf] = {}
_openers: dict[str, str] = {}  # outgoing frame type → its key field


def register_answer_frame(frame_type: str, answer_of: AnswerOf) -> None:
    """Declare ``frame_type`` (incoming) an answer to ``answer_of.opened_by`` (outgoing)."""
    opener_key = _openers.get(answer_of.opened_by)
    if opener_key is not None and opener_key != answer_of.key:
        raise ValueError(f"{answer_of.opened_by!r} answers are keyed by {opener_key!r}, not {answer_of.key!r}")
    _answers[frame_type] = answer_of
    _openers[answer_of.opened_by] = answer_of.key


def unregister_answer_frame(frame_type: str) -> None:
    answer_of = _answers.pop(frame_type, None)
    if answer_of is not None and all(a.opened_by != answer_of.opened_by for a in _answers.values()):
        _openers.pop(answer_of.opened_by, None)


class OpenCalls:
    """The calls a socket opened with an outgoing frame whose answers are still due."""

    def __init__(self, cap: int = OPEN_CALLS_CAP) -> None:
        self._cap = cap
        self._open: dict[tuple[str, str], None] = {}  # insertion-ordered: the oldest goes first

    def __bool__(self) -> bool:
        return bool(self._open)

    def __len__(self) -> int:
        return len(self._open)

    def sent(self, frame: Any) -> None:
        """Note an outgoing frame (a validated model); a frame that opens a call has its key recorded."""
        frame_type = getattr(frame, "type", None)
        key_field = _openers.get(frame_type) if isinstance(frame_type, str) else None
        if key_field is None:
            return
        key = getattr(frame, key_field, None)
        if not isinstance(frame_type, str) or not isinstance(key, str):
            return
        self._open[(frame_type, key)] = None
        while len(self._open) > self._cap:
            del self._open[next(iter(self._open))]

    def answers(self, raw: Mapping[str, Any]) -> bool:
        """True if ``raw`` (a decoded incoming frame) answers a call this socket opened."""
        answer_of = _answers.get(raw.get("type"))  # type: ignore[arg-type]
        if answer_of is None:
            return False
        key = raw.get(answer_of.key)
        return isinstance(key, str) and (answer_of.opened_by, key) in self._open

    def answered(self, raw: Mapping[str, Any]) -> None:
        """An admitted answer: the closing one closes its call."""
        answer_of = _answers.get(raw.get("type"))  # type: ignore[arg-type]
        if answer_of is not None and answer_of.closes:
            self._open.pop((answer_of.opened_by, raw.get(answer_of.key)), None)  # type: ignore[arg-type]

    def clear(self) -> None:
        self._open.clear()
