"""What the socket's own modules (hello, heartbeat, tool calls, layer messages, the session, the
connection table, the channel inbox, drain and presence flush) use of one device socket.

``consumers.DeviceConsumer`` is the socket; those modules annotate with ``DeviceSocket`` so they
need not import the consumer that imports them. mypy cannot hold the consumer to it (its Channels
base class is untyped, so mypy takes the consumer for any type); test_device_socket.py does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel

if TYPE_CHECKING:
    from channels.layers import BaseChannelLayer

    from apps.accounts.models import User

    from .pending_calls import PendingCalls
    from .presence import PresenceEntry, SessionState


class DeviceSocket(Protocol):
    # Who and where: set at the handshake and the hello.
    scope: dict[str, Any]
    user: User
    user_id: str
    device_id: str
    agent_ids: list[str]
    capabilities: frozenset[str]
    node_name: str
    channel_layer: BaseChannelLayer
    channel_name: str

    # Lifecycle state the hello, the heartbeat and the presence flush read or set.
    hello_done: bool
    hello_timer: asyncio.TimerHandle
    torn_down: bool
    last_seen: float
    token_expires_at: float
    pong_due: float
    reading_paused_at: float
    reopening: asyncio.Future | None
    pending: PendingCalls

    @property
    def accepting_calls(self) -> bool: ...

    async def send_text(self, text: str) -> None: ...

    async def send_frame(self, frame: dict[str, Any] | BaseModel) -> None: ...

    async def send_error(self, code: str, message: str, request_id: str | None = None) -> None: ...

    async def close_with(self, code: int, *, reason: str | None = None) -> None: ...

    async def local_call(self, call: dict, *, timeout: float) -> dict: ...  # noqa: ASYNC109

    def spawn(self, coro: Any) -> asyncio.Future: ...

    def spawn_close(self, code: int) -> None: ...

    def layer_message(self, message: dict | BaseException) -> None: ...

    def addressed_to_me(self, message: dict) -> bool: ...

    def call_opened(self, opened_by: str, key: str) -> None: ...

    def may_answer_a_reopened_call(self, raw: Mapping[str, Any]) -> bool: ...

    def heartbeat_missed(self) -> None: ...

    def reading_stalled(self) -> None: ...

    def token_expired(self) -> None: ...

    def presence_entry(self) -> PresenceEntry: ...

    def presence_verdict(self, *, holds: bool, state: SessionState) -> None: ...
