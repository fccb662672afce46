"""Answer frames: incoming frames that answer a call the server made on this socket, so the client's
frame budget neither pays for nor drops them. One mechanism for every kind of call: the device's
``tool_result`` answers the server's ``tool_call`` (declared here), a local run's ``agent_data`` and
``agent_complete`` answer its ``agent_run`` (declared by the agents app, ``register_answer_frame``
from ``AppConfig.ready``).

A socket mixes in ``AnswerBook``: what it awaits answers to. Tool calls are kept by the socket's
pending-call table (``pending_calls``: it resolves, expires and fails them); the calls other frames
open are recorded when the frame is sent (``OpenCalls``, capped, made on the first one: most sockets
never open one). Plain Python, no socket.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from typing import Any, NamedTuple

from django.conf import settings


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


# A tool call is opened by ``tool_call`` and closed by its one ``tool_result``, both naming it by ``id``.
TOOL_CALL = "tool_call"
register_answer_frame("tool_result", AnswerOf(opened_by=TOOL_CALL, key="id", closes=True))


class OpenCalls:
    """The calls a socket opened with an outgoing frame (other than ``tool_call``) whose answers are
    still due, oldest first; past ``cap`` the oldest loses its exemption, nothing else."""

    __slots__ = ("_cap", "_open")

    def __init__(self, *, cap: int) -> None:
        self._cap = cap
        self._open: dict[tuple[str, str], None] = {}  # insertion-ordered: the oldest goes first

    def __bool__(self) -> bool:
        return bool(self._open)

    def __len__(self) -> int:
        return len(self._open)

    def __contains__(self, call: object) -> bool:
        return call in self._open

    def opened(self, frame_type: str, key: str) -> None:
        self._open[(frame_type, key)] = None
        while len(self._open) > self._cap:
            del self._open[next(iter(self._open))]

    def close(self, frame_type: str, key: str) -> None:
        self._open.pop((frame_type, key), None)


def call_opened_by(frame: Any) -> tuple[str, str] | None:
    """(outgoing type, key) if ``frame`` (a validated outgoing model) opens a call recorded by
    ``OpenCalls``; tool calls are the pending table's."""
    frame_type = getattr(frame, "type", None)
    if not isinstance(frame_type, str) or frame_type == TOOL_CALL:
        return None
    key_field = _openers.get(frame_type)
    key = getattr(frame, key_field, None) if key_field is not None else None
    return (frame_type, key) if isinstance(key, str) else None


class AnswerBook:
    """What a socket awaits answers to, for its frame intake: mixed into the socket, which sets
    ``pending`` (its tool calls in flight); ``open_calls`` is made on the first call another frame
    opens (at most DEVICE_OPEN_CALLS_CAP are kept)."""

    pending: Container[str] = frozenset()
    open_calls: OpenCalls | None = None

    def awaits_answers(self) -> bool:
        return bool(self.pending) or bool(self.open_calls)

    def is_answer(self, raw: Mapping[str, Any]) -> bool:
        """True if ``raw`` (a decoded incoming frame) answers a call this socket awaits."""
        answer_of = _answers.get(raw.get("type"))  # type: ignore[arg-type]
        if answer_of is None:
            return False
        key = raw.get(answer_of.key)
        if not isinstance(key, str):
            return False
        if answer_of.opened_by == TOOL_CALL:
            return key in self.pending
        return self.open_calls is not None and (answer_of.opened_by, key) in self.open_calls

    def may_answer_a_reopened_call(self, raw: Mapping[str, Any]) -> bool:
        """True if ``raw`` answers a kind of call a hello re-opens from an earlier socket
        (``call_opened``) and its call is not (yet) awaited here."""
        answer_of = _answers.get(raw.get("type"))  # type: ignore[arg-type]
        if answer_of is None or answer_of.opened_by == TOOL_CALL:
            return False
        key = raw.get(answer_of.key)
        if not isinstance(key, str):
            return False
        return self.open_calls is None or (answer_of.opened_by, key) not in self.open_calls

    def answer_admitted(self, raw: Mapping[str, Any]) -> None:
        """An admitted answer: the closing one closes its call (a tool call is closed by its handler,
        which resolves it in the pending table)."""
        answer_of = _answers.get(raw.get("type"))  # type: ignore[arg-type]
        if answer_of is not None and answer_of.closes and self.open_calls is not None:
            self.open_calls.close(answer_of.opened_by, raw.get(answer_of.key))  # type: ignore[arg-type]
            if not self.open_calls:
                self.open_calls = None  # none left open: nothing kept for the idle socket

    def frame_sent(self, frame: Any) -> None:
        """Note an outgoing frame (a validated model) before it goes: the answer may come back at once."""
        call = call_opened_by(frame)
        if call is not None:
            self._opened(*call)

    def call_opened(self, opened_by: str, key: str) -> None:
        """Await answers to a call ``opened_by`` (a registered outgoing type) sent earlier, on another
        socket of the device: a reconnect picks up the calls still running (the agents app's hello)."""
        if opened_by == TOOL_CALL or opened_by not in _openers:
            raise ValueError(f"{opened_by!r} opens no call answered on this socket")
        self._opened(opened_by, key)

    def _opened(self, opened_by: str, key: str) -> None:
        if self.open_calls is None:
            self.open_calls = OpenCalls(cap=settings.DEVICE_OPEN_CALLS_CAP)
        self.open_calls.opened(opened_by, key)

    def calls_forgotten(self) -> None:
        """The socket is gone: the calls other frames opened are no longer awaited here."""
        self.open_calls = None
