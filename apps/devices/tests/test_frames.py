"""Malformed frames get an error frame and the socket stays open; floods are rate limited."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from apps.devices.close_codes import DeviceCloseCode
from apps.devices.frames import (
    ToolCall,
    ToolResult,
    incoming_adapter,
    outgoing_json,
    parse_json,
    parse_outgoing,
    tool_call_frame,
    tool_call_json,
)
from apps.devices.tests.conftest import SOCKET_DB

pytestmark = SOCKET_DB


async def _error_then_still_open(client) -> dict:
    error = await client.next_frame()
    await client.send({"type": "ping"})
    assert await client.next_frame() == {"type": "pong"}
    return error


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{not json", "malformed_frame"),
        (json.dumps([1, 2]), "unknown_frame_type"),
        (json.dumps({"type": "launch_missiles"}), "unknown_frame_type"),
        (json.dumps({"type": "home_request", "request_id": "r9"}), "invalid_frame"),
        (json.dumps({"type": "floating_request", "message": "x", "scope": "tasks"}), "invalid_frame"),
        (json.dumps({"type": "tool_result"}), "invalid_frame"),
        (b"\x00\x01", "malformed_frame"),
    ],
    ids=["not-json", "not-an-object", "unknown-type", "missing-field", "wrong-type", "no-id", "binary"],
)
async def test_malformed_frame_gets_an_error_frame_and_the_socket_stays_open(devices, user, raw, code):
    client = await devices(user)
    await client.send_raw(raw)
    error = await _error_then_still_open(client)
    assert error["type"] == "error"
    assert error["code"] == code


async def test_invalid_request_names_its_request_id_and_field(devices, user):
    client = await devices(user)
    await client.send({"type": "home_request", "request_id": "r9"})
    error = await _error_then_still_open(client)
    assert error["request_id"] == "r9"
    assert "message" in error["message"]


async def test_oversized_frame_is_refused(devices, user, settings):
    settings.DEVICE_MAX_FRAME_BYTES = 1000
    client = await devices(user)
    await client.send({"type": "home_request", "message": "x" * 2000})
    error = await _error_then_still_open(client)
    assert error["code"] == "frame_too_large"


async def test_a_flood_is_rate_limited_then_closed(devices, user, settings):
    # given a small bucket
    settings.DEVICE_FRAME_RATE = 1.0
    settings.DEVICE_FRAME_BURST = 5
    settings.DEVICE_FLOOD_CLOSE_AFTER = 50
    client = await devices(user)

    # when the client floods
    for _ in range(100):
        await client.send({"type": "ping"})

    # then it is told once, then closed
    frames = []
    while True:
        frame = await client.next_frame()
        frames.append(frame)
        if frame["type"] == "error":
            break
    assert frames[-1]["code"] == "rate_limited"
    assert [f for f in frames if f["type"] == "pong"] == [{"type": "pong"}] * (len(frames) - 1)
    assert await client.wait_closed() == DeviceCloseCode.RATE_LIMITED


def test_tool_result_payload_keeps_an_explicit_null_row():
    frame = incoming_adapter.validate_python({"type": "tool_result", "id": "1", "row": None})
    assert isinstance(frame, ToolResult)
    assert frame.payload() == {"row": None}


def test_outgoing_frames_are_validated():
    assert json.loads(outgoing_json({"type": "stream_text", "request_id": "r", "chunk": "hi"})) == {
        "type": "stream_text",
        "request_id": "r",
        "chunk": "hi",
    }
    with pytest.raises(ValidationError):
        outgoing_json({"type": "stream_text", "request_id": "r"})
    with pytest.raises(ValidationError):
        outgoing_json({"type": "floating_domain", "request_id": "r", "domain": "weather"})
    with pytest.raises(ValidationError):
        outgoing_json({"type": "tool_result", "id": "x"})  # not a server frame


def test_an_app_declares_its_own_frame_types_with_their_models() -> None:
    from typing import Literal

    from apps.devices.frames import (
        IncomingFrameModel,
        OutgoingFrameModel,
        _registered_incoming,
        _registered_outgoing,
        is_incoming_type,
        is_request_type,
        parse_incoming,
        register_incoming_frame,
        register_outgoing_frame,
    )

    class Probe(IncomingFrameModel):
        type: Literal["probe_test"]
        depth: int

    class ProbeOut(OutgoingFrameModel):
        type: Literal["probe_out_test"] = "probe_out_test"
        depth: int

    try:
        # when
        register_incoming_frame(Probe)
        register_outgoing_frame(ProbeOut)

        # then the socket knows them, validates them, and reports field locations like its own frames'
        assert is_incoming_type("probe_test")
        assert is_request_type("probe_test")
        assert parse_incoming({"type": "probe_test", "depth": 2}) == Probe(type="probe_test", depth=2)
        with pytest.raises(ValidationError) as caught:
            parse_incoming({"type": "probe_test", "depth": "deep"})
        assert caught.value.errors()[0]["loc"] == ("probe_test", "depth")
        assert json.loads(outgoing_json({"type": "probe_out_test", "depth": 1})) == {
            "type": "probe_out_test",
            "depth": 1,
        }
        with pytest.raises(ValidationError):
            outgoing_json({"type": "probe_out_test", "depth": 1, "extra": True})

        # and a built-in type cannot be taken over
        class FakePong(IncomingFrameModel):
            type: Literal["pong"]

        with pytest.raises(ValueError, match="already declared"):
            register_incoming_frame(FakePong)
    finally:
        _registered_incoming.pop("probe_test", None)
        _registered_outgoing.pop("probe_out_test", None)


# --- the tool_call frame, built without the model on the hot path ------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"action": "get", "table": "tasks", "data": {"id": "x"}},
        {"action": "select", "table": "notes", "filters": {"done": False}, "limit": 20},
        {"action": "vector_search", "table": "memories", "vector": [0.5, -1.25], "limit": 5},
        {"action": "insert", "table": "tasks", "data": {"title": "naïve ☃", "tags": ["a"], "n": 2**40}},
        {"action": "delete", "table": "tasks", "data": {}},
        # values the model changes: ints in a vector become floats, a bool limit becomes 1
        {"action": "vector_upsert", "table": "m", "vector": [1, 2.5], "limit": True},
        {"action": "update", "table": "t", "data": {"at": datetime(2026, 12, 6, 5, 0, tzinfo=UTC)}},
    ],
)
def test_a_tool_call_frame_is_exactly_what_the_model_sends(fields) -> None:
    # when the hot path builds and serializes a tool call
    call = tool_call_frame(id="c1", **fields)
    text = tool_call_json(call)

    # then it is the model's frame, key for key and in the same order, and its text reads back as that
    # frame and is a valid outgoing tool_call
    model = ToolCall(id="c1", **fields)
    assert call == model.model_dump(exclude_none=True)
    assert list(call) == list(model.model_dump(exclude_none=True))
    assert json.loads(text) == json.loads(outgoing_json(model))
    assert isinstance(parse_outgoing(json.loads(text)), ToolCall)


@pytest.mark.parametrize(
    "fields",
    [
        {"action": "drop_table", "table": "tasks"},
        {"action": "select", "table": 7},
        {"action": "select", "filters": {1: "x"}},
        {"action": "vector_search", "vector": ["x"]},
        {"action": "select", "limit": "many"},
        {"action": "get", "row": {"id": "x"}},  # not a tool_call field
    ],
)
def test_a_tool_call_the_model_refuses_is_refused(fields) -> None:
    with pytest.raises(ValidationError):
        ToolCall(id="c1", **fields)
    with pytest.raises(ValidationError):
        tool_call_frame(id="c1", **fields)


def test_a_new_tool_call_gets_a_fresh_id_of_32_hex_digits() -> None:
    first, second = tool_call_frame(action="get")["id"], tool_call_frame(action="get")["id"]
    assert first != second
    assert len(first) == 32
    assert int(first, 16) >= 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"type": "ping", "n": NaN}', "nan"),
        ('{"type": "ping", "n": 18446744073709551615}', 2**64 - 1),
        ('{"type": "ping", "n": "\\ud800"}', "\ud800"),
    ],
)
def test_a_frame_only_the_standard_json_reader_takes_is_still_read(text, expected) -> None:
    value = parse_json(text)["n"]
    assert (str(value) == "nan") if expected == "nan" else value == expected


def test_an_integer_past_64_bits_is_read_as_a_number_not_refused() -> None:
    assert parse_json('{"n": 123456789012345678901234567890}')["n"] == pytest.approx(1.2345678901234568e29)


def test_a_frame_nested_too_deeply_is_malformed() -> None:
    with pytest.raises(ValueError, match="nested too deeply"):
        parse_json("[" * 100_000 + "]" * 100_000)
