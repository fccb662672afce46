"""The frame-handler registry: higher apps plug their frame handlers into the socket here.

Two kinds of incoming frame, registered from another app's ``AppConfig.ready``:

- a *request* (``register_request_handler("home_request", handler)``) is answered by numbered,
  resumable frames: the consumer opens a request stream (``streams``) and runs
  ``await handler(session, frame)`` as its own task, which outlives the socket; ``frame`` is the
  validated pydantic model, its ``request_id`` always set;
- a *message* (``register_message_handler("agent_data", handler, model=AgentData)``) is validated
  and handed over: no stream, nothing to resume, nothing kept in Redis. A stable error the
  handler raises (``ApplicationError``) goes straight back to the socket, with the frame's
  ``request_id``.

A frame type the socket does not know is declared by the app that handles it (``model``: a
pydantic model with ``type: Literal[...]`` and an optional ``request_id``).
``register_connect_handler`` runs a coroutine after each ``device_hello`` (e.g. to start agent
runs that were due while the device was offline). ``register_calls_reopener`` runs one too, to
re-open on the new socket the calls an earlier socket of the device opened (``call_opened``): until
it ends, a frame that may answer such a call waits for it instead of spending the frame budget.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from . import frames
from .answer_frames import AnswerOf, register_answer_frame, unregister_answer_frame

if TYPE_CHECKING:
    from apps.accounts.models import User


class DeviceSession(Protocol):
    """What a handler gets: the socket's owner and device, ``send`` and ``call`` (a tool call)."""

    user: User
    user_id: str
    device_id: str
    agent_ids: list[str]
    capabilities: frozenset[str]

    async def send(self, frame: dict[str, Any]) -> None: ...

    async def call(self, **kwargs: Any) -> dict: ...

    # Answers to a call (``opened_by``, e.g. ``agent_run``) sent on an earlier socket are awaited here too.
    def call_opened(self, opened_by: str, key: str) -> None: ...


FrameHandler = Callable[[DeviceSession, Any], Awaitable[None]]
ConnectHandler = Callable[[DeviceSession], Awaitable[None]]


class FrameKind(StrEnum):
    REQUEST = "request"  # answered by numbered, resumable frames
    MESSAGE = "message"  # validated and handed over; nothing to resume


class Registration(NamedTuple):
    kind: FrameKind
    handler: FrameHandler


_frame_handlers: dict[str, Registration] = {}
_connect_handlers: list[ConnectHandler] = []
_calls_reopeners: list[ConnectHandler] = []


def _register(
    kind: FrameKind,
    frame_type: str,
    handler: FrameHandler,
    *,
    model: type[frames.IncomingFrameModel] | None,
    replace: bool,
) -> None:
    if model is not None and frames.register_incoming_frame(model) != frame_type:
        raise ValueError(f"{model.__name__} is not a {frame_type!r} frame")
    if not frames.is_request_type(frame_type):
        raise ValueError(f"{frame_type!r} is not a registrable frame type ({sorted(frames.REQUEST_FRAME_TYPES)})")
    current = _frame_handlers.get(frame_type)
    if current is not None and not replace and current != (kind, handler):
        raise ValueError(f"a handler for {frame_type!r} is already registered")
    _frame_handlers[frame_type] = Registration(kind, handler)


def register_request_handler(
    frame_type: str,
    handler: FrameHandler,
    *,
    model: type[frames.IncomingFrameModel] | None = None,
    replace: bool = False,
) -> None:
    """Route request frames of ``frame_type`` to ``handler`` (run with a resumable stream); one
    handler per type. ``model`` declares a new incoming frame type (``frames.register_incoming_frame``)."""
    _register(FrameKind.REQUEST, frame_type, handler, model=model, replace=replace)


def register_message_handler(
    frame_type: str,
    handler: FrameHandler,
    *,
    model: type[frames.IncomingFrameModel] | None = None,
    replace: bool = False,
    answers: AnswerOf | None = None,
) -> None:
    """Route message frames of ``frame_type`` to ``handler`` (no stream); one handler per type.
    ``answers`` declares them answers to a frame the server sends (``answer_frames``): for a call
    that frame opened on the socket they spend no frame budget and are never dropped."""
    _register(FrameKind.MESSAGE, frame_type, handler, model=model, replace=replace)
    if answers is not None:
        register_answer_frame(frame_type, answers)


def unregister_handler(frame_type: str) -> None:
    _frame_handlers.pop(frame_type, None)
    unregister_answer_frame(frame_type)


def get_handler(frame_type: str) -> Registration | None:
    return _frame_handlers.get(frame_type)


def _add_once(hooks: list[ConnectHandler], hook: ConnectHandler) -> None:
    if hook not in hooks:
        hooks.append(hook)


def _discard(hooks: list[ConnectHandler], hook: ConnectHandler) -> None:
    if hook in hooks:
        hooks.remove(hook)


def register_connect_handler(handler: ConnectHandler) -> None:
    """Run ``handler(session)`` (as its own task) after every successful ``device_hello``; the task is
    cancelled when the socket closes, and its session holds the socket weakly (``session``)."""
    _add_once(_connect_handlers, handler)


def unregister_connect_handler(handler: ConnectHandler) -> None:
    _discard(_connect_handlers, handler)


def connect_handlers() -> tuple[ConnectHandler, ...]:
    return tuple(_connect_handlers)


def register_calls_reopener(reopener: ConnectHandler) -> None:
    """Run ``reopener(session)`` after every successful ``device_hello`` to re-open (``call_opened``)
    the calls still running from an earlier socket of the device; the answers to such calls that
    arrive meanwhile wait for it. It must end soon (one query) and never raise."""
    _add_once(_calls_reopeners, reopener)


def unregister_calls_reopener(reopener: ConnectHandler) -> None:
    _discard(_calls_reopeners, reopener)


def calls_reopeners() -> tuple[ConnectHandler, ...]:
    return tuple(_calls_reopeners)
