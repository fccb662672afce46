"""The frame-handler registry: higher apps plug their request handlers into the socket here.

``register_frame_handler("home_request", handler)`` is called from another app's
``AppConfig.ready``; the consumer runs each request frame as its own task with
``await handler(session, frame)``, where ``frame`` is the validated pydantic model (its
``request_id`` always set). A frame type the socket does not know is declared by the app that
handles it: ``register_frame_handler("agent_data", handler, model=AgentData)``, the model
having a ``type: Literal["agent_data"]`` and an optional ``request_id``.
``register_connect_handler`` runs a coroutine after each ``device_hello`` (e.g. to start agent
runs that were due while the device was offline).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from . import frames

if TYPE_CHECKING:
    from apps.accounts.models import User


class DeviceSession(Protocol):
    """What a handler gets: the socket's owner and device, and a validated ``send``."""

    user: User
    user_id: str
    device_id: str
    agent_ids: list[str]

    async def send(self, frame: dict[str, Any]) -> None: ...


FrameHandler = Callable[[DeviceSession, Any], Awaitable[None]]
ConnectHandler = Callable[[DeviceSession], Awaitable[None]]

_frame_handlers: dict[str, FrameHandler] = {}
_connect_handlers: list[ConnectHandler] = []


def register_frame_handler(
    frame_type: str,
    handler: FrameHandler,
    *,
    model: type[frames.IncomingFrameModel] | None = None,
    replace: bool = False,
) -> None:
    """Route request frames of ``frame_type`` to ``handler``; one handler per type. ``model``
    declares a new incoming frame type (see ``frames.register_incoming_frame``)."""
    if model is not None and frames.register_incoming_frame(model) != frame_type:
        raise ValueError(f"{model.__name__} is not a {frame_type!r} frame")
    if not frames.is_request_type(frame_type):
        raise ValueError(f"{frame_type!r} is not a request frame type ({sorted(frames.REQUEST_FRAME_TYPES)})")
    if frame_type in _frame_handlers and not replace and _frame_handlers[frame_type] is not handler:
        raise ValueError(f"a handler for {frame_type!r} is already registered")
    _frame_handlers[frame_type] = handler


def unregister_frame_handler(frame_type: str) -> None:
    _frame_handlers.pop(frame_type, None)


def get_frame_handler(frame_type: str) -> FrameHandler | None:
    return _frame_handlers.get(frame_type)


def register_connect_handler(handler: ConnectHandler) -> None:
    """Run ``handler(session)`` (as its own task) after every successful ``device_hello``."""
    if handler not in _connect_handlers:
        _connect_handlers.append(handler)


def unregister_connect_handler(handler: ConnectHandler) -> None:
    if handler in _connect_handlers:
        _connect_handlers.remove(handler)


def connect_handlers() -> tuple[ConnectHandler, ...]:
    return tuple(_connect_handlers)
