"""Pydantic models of every frame of the device socket (SPEC "The device socket"), in and out.

Incoming frames tolerate unknown extra keys (a newer client may send more); outgoing frames are
strict, so the server never sends a frame the client was not promised.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from django.conf import settings
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter

ToolAction = Literal["select", "get", "insert", "update", "delete", "vector_upsert", "vector_search"]

# Frame types that start a piece of work run as its own task (see handlers.py).
REQUEST_FRAME_TYPES = frozenset({"home_request", "floating_request", "agent_data", "agent_complete"})


def max_frame_bytes() -> int:
    return settings.DEVICE_MAX_FRAME_BYTES


def parse_json(text: str) -> Any:
    """``json.loads`` that fails like any malformed frame (ValueError) on absurd nesting too."""
    try:
        return json.loads(text)
    except RecursionError as exc:
        raise ValueError("the frame is nested too deeply") from exc


def _printable(value: str) -> str:
    # A device id is stored and shown: control characters (NUL breaks PostgreSQL text) are refused.
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError("must not contain control characters")
    return value


PrintableId = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(_printable)]


class _In(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- client → server -------------------------------------------------------------------------


class DeviceHello(_In):
    type: Literal["device_hello"]
    device_id: PrintableId
    agent_ids: list[str] = Field(default_factory=list, max_length=1000)
    name: str | None = Field(default=None, max_length=200)
    platform: str | None = Field(default=None, max_length=64)


class PingIn(_In):
    type: Literal["ping"]


class PongIn(_In):
    type: Literal["pong"]


class Scope(_In):
    type: str = Field(min_length=1, max_length=64)
    id: str | None = Field(default=None, max_length=128)


class HomeRequest(_In):
    type: Literal["home_request"]
    request_id: str | None = Field(default=None, min_length=1, max_length=128)
    message: str
    conversation_history: list[dict[str, Any]] | None = None


class FloatingRequest(_In):
    type: Literal["floating_request"]
    request_id: str | None = Field(default=None, min_length=1, max_length=128)
    message: str
    scope: Scope


class AgentFile(_In):
    path: str
    name: str
    content: str
    metadata: dict[str, Any] = Field(default_factory=dict)


class AgentData(_In):
    type: Literal["agent_data"]
    request_id: str | None = Field(default=None, min_length=1, max_length=128)
    run_id: str = Field(min_length=1, max_length=128)
    files: list[AgentFile] = Field(default_factory=list)


class AgentComplete(_In):
    type: Literal["agent_complete"]
    request_id: str | None = Field(default=None, min_length=1, max_length=128)
    run_id: str = Field(min_length=1, max_length=128)
    files_read: int = 0
    errors: list[Any] = Field(default_factory=list)


class ToolResult(_In):
    type: Literal["tool_result"]
    id: str = Field(min_length=1, max_length=128)
    row: dict[str, Any] | None = None
    rows: list[dict[str, Any]] | None = None
    results: list[dict[str, Any]] | None = None
    deleted: bool | None = None
    ok: bool | None = None
    error: str | None = None

    def payload(self) -> dict[str, Any]:
        """The result keys the client actually sent (``row: null`` from a ``get`` is meaningful)."""
        return self.model_dump(include=set(self.model_fields_set) - {"type", "id", "error"})


class Cancel(_In):
    """Cancel a running request (an addition to SPEC's table)."""

    type: Literal["cancel"]
    request_id: str = Field(min_length=1, max_length=128)


class Resume(_In):
    """Replay a request's frames after ``after_seq`` on this socket, then its live rest."""

    type: Literal["resume"]
    request_id: str = Field(min_length=1, max_length=128)
    after_seq: int = Field(default=0, ge=0)


class Auth(_In):
    """Present a fresh access token on a live socket, so it outlives the one it opened with
    (an addition to SPEC's table; without it the socket closes when its token expires)."""

    type: Literal["auth"]
    token: str = Field(min_length=1, max_length=4096, repr=False)


IncomingFrame = Annotated[
    DeviceHello
    | PingIn
    | PongIn
    | HomeRequest
    | FloatingRequest
    | AgentData
    | AgentComplete
    | ToolResult
    | Cancel
    | Resume
    | Auth,
    Field(discriminator="type"),
]
incoming_adapter: TypeAdapter[IncomingFrame] = TypeAdapter(IncomingFrame)
INCOMING_TYPES = frozenset(
    {"device_hello", "ping", "pong", "home_request", "floating_request", "agent_data", "agent_complete"}
    | {"tool_result", "cancel", "resume", "auth"}
)


# --- server → client -------------------------------------------------------------------------


class PingOut(_Out):
    type: Literal["ping"] = "ping"


class PongOut(_Out):
    type: Literal["pong"] = "pong"


class FloatingDomain(_Out):
    type: Literal["floating_domain"] = "floating_domain"
    request_id: str
    seq: int | None = None
    domain: Literal["tasks", "timelines", "notes", "projects"]


class StreamStart(_Out):
    type: Literal["stream_start"] = "stream_start"
    request_id: str
    seq: int | None = None


class StreamText(_Out):
    type: Literal["stream_text"] = "stream_text"
    request_id: str
    seq: int | None = None
    chunk: str


class StreamBlock(_Out):
    """A structured block inside a stream (seed v3: ``block_type`` + ``data``)."""

    type: Literal["stream_block"] = "stream_block"
    request_id: str
    seq: int | None = None
    block_type: str
    data: Any = None


class Mutation(_Out):
    action: str
    table: str
    data: dict[str, Any] = Field(default_factory=dict)  # what the request sent (the earlier backend's shape)
    row: dict[str, Any] | None = None  # the row the device returned, when it returned one


class StreamEnd(_Out):
    type: Literal["stream_end"] = "stream_end"
    request_id: str
    seq: int | None = None
    mutations: list[Mutation] = Field(default_factory=list)
    cancelled: bool | None = None  # true when a ``cancel`` frame stopped the request


class ToolCall(_Out):
    type: Literal["tool_call"] = "tool_call"
    id: str
    action: ToolAction
    table: str | None = None
    data: dict[str, Any] | None = None
    filters: dict[str, Any] | None = None
    vector: list[float] | None = None
    limit: int | None = None


class AgentRunConfig(_Out):
    paths: list[str] = Field(default_factory=list)
    file_extensions: list[str] = Field(default_factory=list)
    prompt_template: str = ""
    data_types: list[str] = Field(default_factory=list)


class AgentRun(_Out):
    type: Literal["agent_run"] = "agent_run"
    run_id: str
    agent_id: str
    config: AgentRunConfig


class ErrorFrame(_Out):
    type: Literal["error"] = "error"
    request_id: str | None = None
    seq: int | None = None
    code: str
    message: str


OutgoingFrame = Annotated[
    PingOut
    | PongOut
    | FloatingDomain
    | StreamStart
    | StreamText
    | StreamBlock
    | StreamEnd
    | ToolCall
    | AgentRun
    | ErrorFrame,
    Field(discriminator="type"),
]
outgoing_adapter: TypeAdapter[OutgoingFrame] = TypeAdapter(OutgoingFrame)


def outgoing_json(frame: dict[str, Any] | BaseModel) -> str:
    """Validate an outgoing frame and serialize it (``None`` keys dropped, as the client expects)."""
    model = frame if isinstance(frame, _Out) else outgoing_adapter.validate_python(frame)
    text = model.model_dump_json(exclude_none=True)
    if len(text) > max_frame_bytes():
        raise ValueError(f"outgoing {model.type} frame exceeds DEVICE_MAX_FRAME_BYTES")
    return text
