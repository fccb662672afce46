"""Pydantic models of the device socket's own frames (SPEC "The device socket"), in and out, and
the registry through which higher apps declare theirs (``register_incoming_frame``,
``register_outgoing_frame``; e.g. the agents app's ``agent_data`` and ``agent_run``).

Incoming frames tolerate unknown extra keys (a newer client may send more); outgoing frames are
strict, so the server never sends a frame the client was not promised.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, TypeGuard, cast, get_args

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic_core import InitErrorDetails

from .call_ids import new_call_id
from .capabilities import register_capability
from .hot_settings import hot_setting

ToolAction = Literal["select", "get", "insert", "update", "delete", "vector_upsert", "vector_search"]

# Frame types that start a piece of work run as its own task (see handlers.py); frame types other
# apps register (``register_incoming_frame``) are request frames too.
REQUEST_FRAME_TYPES = frozenset({"home_request", "floating_request"})


def max_frame_bytes() -> int:
    return hot_setting("DEVICE_MAX_FRAME_BYTES")


def parse_json(text: str) -> Any:
    """``json.loads`` that fails like any malformed frame (ValueError) on absurd nesting too.

    orjson reads a frame in a fraction of json's time; what it refuses and json takes (NaN, a lone
    surrogate's escape, which the intake then rejects by name) goes to json. One difference: an
    integer past 64 bits (no client's SQLite holds one) is read as a float, not exactly.
    """
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
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
CapabilityName = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_printable)]
MAX_CAPABILITIES = 32


class IncomingFrameModel(BaseModel):
    """Base of every client → server frame (also of those other apps register)."""

    model_config = ConfigDict(extra="ignore")


class OutgoingFrameModel(BaseModel):
    """Base of every server → client frame (also of those other apps register)."""

    model_config = ConfigDict(extra="forbid")


_In = IncomingFrameModel
_Out = OutgoingFrameModel


# --- client → server -------------------------------------------------------------------------


class DeviceHello(_In):
    type: Literal["device_hello"]
    device_id: PrintableId
    agent_ids: list[str] = Field(default_factory=list, max_length=1000)
    name: str | None = Field(default=None, max_length=200)
    platform: str | None = Field(default=None, max_length=64)
    # Absent: a seed client (no device_welcome, no capability frames). See capabilities.py.
    capabilities: list[CapabilityName] | None = Field(default=None, max_length=MAX_CAPABILITIES)


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
        """The result keys the client actually sent (``row: null`` from a ``get`` is meaningful).

        Every payload field holds plain JSON values, so the validated values are the dump."""
        return {name: getattr(self, name) for name in self.model_fields_set if name not in _NOT_PAYLOAD}


_NOT_PAYLOAD = frozenset({"type", "id", "error"})


class Cancel(_In):
    """Cancel a running request (an addition to SPEC's table)."""

    type: Literal["cancel"]
    request_id: str = Field(min_length=1, max_length=128)


class Resume(_In):
    """Replay a request's frames after ``after_seq`` on this socket, then its live rest."""

    type: Literal["resume"]
    request_id: str = Field(min_length=1, max_length=128)
    # Redis takes the replay's start as a 64-bit integer; a larger one would fail there, not here.
    after_seq: int = Field(default=0, ge=0, le=2**63 - 1)


class Auth(_In):
    """Present a fresh access token on a live socket, so it outlives the one it opened with
    (an addition to SPEC's table; without it the socket closes when its token expires)."""

    type: Literal["auth"]
    token: str = Field(min_length=1, max_length=4096, repr=False)


IncomingFrame = Annotated[
    DeviceHello | PingIn | PongIn | HomeRequest | FloatingRequest | ToolResult | Cancel | Resume | Auth,
    Field(discriminator="type"),
]
incoming_adapter: TypeAdapter[IncomingFrame] = TypeAdapter(IncomingFrame)
INCOMING_TYPES = frozenset(
    {"device_hello", "ping", "pong", "home_request", "floating_request", "tool_result", "cancel", "resume", "auth"}
)


# --- server → client -------------------------------------------------------------------------


class PingOut(_Out):
    type: Literal["ping"] = "ping"


class PongOut(_Out):
    type: Literal["pong"] = "pong"


class DeviceWelcome(_Out):
    """The answer to a hello that declared ``capabilities``: the server's protocol version and the
    capabilities it will use on this socket (sent before any other frame)."""

    type: Literal["device_welcome"] = "device_welcome"
    protocol: int
    capabilities: list[str]


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


_TOOL_ACTIONS = frozenset(get_args(ToolAction))
# Values pydantic would not pass through unchanged go to it (through the model, as before).
_TOOL_CALL_JSON = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _plain_dict(value: Any) -> bool:
    return type(value) is dict and {*map(type, value)} <= _STR


def _plain_vector(value: Any) -> bool:
    return type(value) is list and {*map(type, value)} <= _FLOAT


_STR, _FLOAT = frozenset({str}), frozenset({float})


def tool_call_frame(
    *,
    action: Any,
    id: Any = None,  # the frame's fields: id, type
    table: Any = None,
    data: Any = None,
    filters: Any = None,
    vector: Any = None,
    limit: Any = None,
    type: Any = "tool_call",
    **unknown: Any,
) -> dict[str, Any]:
    """A ``tool_call`` frame as sent (a new ``id`` unless given; ``None`` fields left out), exactly
    ``ToolCall(...).model_dump(exclude_none=True)``. A tool call is the hottest frame the server
    builds, so fields the model would keep as they are skip it; anything else goes through the model
    (pydantic ``ValidationError`` as it raises)."""
    call = {"type": type, "id": new_call_id() if id is None else id, "action": action}
    plain = type == "tool_call" and call["id"].__class__ is str and action in _TOOL_ACTIONS and not unknown
    if table is not None:
        call["table"] = table
        plain = plain and table.__class__ is str
    if data is not None:
        call["data"] = data
        plain = plain and _plain_dict(data)
    if filters is not None:
        call["filters"] = filters
        plain = plain and _plain_dict(filters)
    if vector is not None:
        call["vector"] = vector
        plain = plain and _plain_vector(vector)
    if limit is not None:
        call["limit"] = limit
        plain = plain and limit.__class__ is int
    if plain:
        return call
    return ToolCall(**call, **unknown).model_dump(exclude_none=True)


def tool_call_json(call: dict[str, Any]) -> str:
    """A frame of ``tool_call_frame`` as sent: what ``outgoing_json`` gives, without validating again."""
    try:
        text = orjson.dumps(call, option=_TOOL_CALL_JSON).decode()
    except TypeError:  # a value only pydantic serializes (a datetime, a set, a non-str key)
        return outgoing_json(ToolCall.model_validate(call))
    if len(text) > max_frame_bytes():
        raise ValueError("outgoing tool_call frame exceeds DEVICE_MAX_FRAME_BYTES")
    return text


class ErrorFrame(_Out):
    type: Literal["error"] = "error"
    request_id: str | None = None
    seq: int | None = None
    code: str
    message: str
    # llm_budget_exhausted: when the budget renews (ISO 8601, UTC) and the plan that gives more
    resets_at: str | None = None
    upgrade_tier: str | None = None


OutgoingFrame = Annotated[
    PingOut
    | PongOut
    | DeviceWelcome
    | FloatingDomain
    | StreamStart
    | StreamText
    | StreamBlock
    | StreamEnd
    | ToolCall
    | ErrorFrame,
    Field(discriminator="type"),
]
outgoing_adapter: TypeAdapter[OutgoingFrame] = TypeAdapter(OutgoingFrame)


OUTGOING_TYPES = frozenset(
    {
        "ping",
        "pong",
        "device_welcome",
        "floating_domain",
        "stream_start",
        "stream_text",
        "stream_block",
        "stream_end",
        "tool_call",
    }
    | {"error"}
)


# --- frames other apps declare ----------------------------------------------------------------

_registered_incoming: dict[str, type[IncomingFrameModel]] = {}
_registered_outgoing: dict[str, type[OutgoingFrameModel]] = {}
_capability_of: dict[str, str] = {}  # outgoing frame type → the capability a socket needs for it


def _frame_type_of(model: type[BaseModel]) -> str:
    field = model.model_fields.get("type")
    literal = getattr(field, "annotation", None)
    values: tuple[Any, ...] = getattr(literal, "__args__", ())
    if len(values) != 1 or not isinstance(values[0], str):
        raise ValueError(f'{model.__name__} needs a field ``type: Literal["..."]``')
    return values[0]


def _register(model: type[BaseModel], table: dict, builtin: frozenset[str]) -> str:
    frame_type = _frame_type_of(model)
    if frame_type in builtin or table.get(frame_type, model) is not model:
        raise ValueError(f"frame type {frame_type!r} is already declared")
    table[frame_type] = model
    return frame_type


def register_incoming_frame(model: type[IncomingFrameModel]) -> str:
    """Declare a client → server frame (its handler: ``handlers.register_request_handler`` or
    ``handlers.register_message_handler``)."""
    return _register(model, _registered_incoming, INCOMING_TYPES)


def register_outgoing_frame(model: type[OutgoingFrameModel], *, capability: str | None = None) -> str:
    """Declare a server → client frame that ``send_to_device`` / ``session.send`` may send.

    Every frame added after the seed protocol names a ``capability``: it is offered to clients in
    ``device_welcome`` and sent only to sockets that negotiated it (see capabilities.py).
    """
    frame_type = _register(model, _registered_outgoing, OUTGOING_TYPES)
    if capability is not None:
        register_capability(capability)
        _capability_of[frame_type] = capability
    return frame_type


def capability_required(frame_type: str) -> str | None:
    """The capability a socket must have negotiated to receive ``frame_type`` (None: any socket)."""
    return _capability_of.get(frame_type)


def is_incoming_type(frame_type: Any) -> TypeGuard[str]:
    return frame_type in INCOMING_TYPES or frame_type in _registered_incoming


def is_request_type(frame_type: str) -> bool:
    return frame_type in REQUEST_FRAME_TYPES or frame_type in _registered_incoming


def parse_incoming(raw: dict[str, Any]) -> BaseModel:
    """Validate a decoded client frame of a known type (pydantic ``ValidationError`` if invalid)."""
    model = _registered_incoming.get(raw.get("type", ""))
    if model is None:
        return incoming_adapter.validate_python(raw)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        # Locations as the built-in frames' tagged union reports them: (frame type, field, ...).
        # ErrorDetails carry InitErrorDetails' keys (and msg, which from_exception_data ignores).
        errors = cast(
            "list[InitErrorDetails]", [{**e, "loc": (raw["type"], *e["loc"])} for e in exc.errors(include_url=False)]
        )
        raise ValidationError.from_exception_data(exc.title, errors) from None


def parse_outgoing(frame: dict[str, Any] | BaseModel) -> OutgoingFrameModel:
    """The validated model of a server frame (pydantic ``ValidationError`` if it breaks the contract)."""
    if isinstance(frame, OutgoingFrameModel):
        return frame
    model = _registered_outgoing.get(frame.get("type", "")) if isinstance(frame, dict) else None
    return model.model_validate(frame) if model is not None else outgoing_adapter.validate_python(frame)


def outgoing_json(frame: dict[str, Any] | BaseModel) -> str:
    """Validate an outgoing frame and serialize it (``None`` keys dropped, as the client expects)."""
    model = parse_outgoing(frame)
    text = model.model_dump_json(exclude_none=True)
    if len(text) > max_frame_bytes():
        frame_type = getattr(model, "type", type(model).__name__)  # every concrete frame declares it
        raise ValueError(f"outgoing {frame_type} frame exceeds DEVICE_MAX_FRAME_BYTES")
    return text
