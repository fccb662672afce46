"""Frame intake without a socket: raw text in, a validated frame, a rejection or a drop out."""

from __future__ import annotations

import json

import pytest

from apps.devices.answer_frames import AnswerBook
from apps.devices.frames import DeviceHello, ToolResult
from apps.devices.intake import Accepted, BudgetOutcome, Dropped, Rejected, frame_intake
from apps.devices.rate_limit import FrameBudget

LIMIT = 2000


def budget(tokens: int = 100, close_after: int = 3) -> FrameBudget:
    clock = [0.0]  # a frozen clock: the bucket never refills
    return FrameBudget(rate=1.0, burst=tokens, close_after=close_after, clock=lambda: clock[0])


def intake(text: str | None, *, bytes_data: bytes | None = None, b: FrameBudget | None = None, pending=()):
    awaited = AnswerBook()
    awaited.pending = set(pending)
    return frame_intake(text, bytes_data, budget=b or budget(), max_bytes=LIMIT, awaited=awaited)


def test_a_valid_frame_is_accepted_as_its_model():
    result = intake(json.dumps({"type": "device_hello", "device_id": "laptop"}))
    assert isinstance(result, Accepted)
    assert result.frame_type == "device_hello"
    assert isinstance(result.frame, DeviceHello)
    assert result.frame.device_id == "laptop"


@pytest.mark.parametrize(
    ("text", "bytes_data", "code"),
    [
        (None, b"\x00", "malformed_frame"),
        ("{not json", None, "malformed_frame"),
        ("[" * 100_000 + "]" * 100_000, None, "frame_too_large"),
        (json.dumps({"type": "launch_missiles"}), None, "unknown_frame_type"),
        (json.dumps(["ping"]), None, "unknown_frame_type"),
        (json.dumps({"type": "device_hello"}), None, "invalid_frame"),
    ],
)
def test_bad_frames_are_rejected_with_a_stable_code(text, bytes_data, code):
    result = intake(text, bytes_data=bytes_data)
    assert isinstance(result, Rejected)
    assert result.code == code


def test_an_invalid_frame_names_its_field_and_echoes_its_request_id():
    result = intake(json.dumps({"type": "resume", "request_id": "r1", "after_seq": "soon"}))
    assert isinstance(result, Rejected)
    assert (result.code, result.request_id) == ("invalid_frame", "r1")
    assert "after_seq" in result.message


def test_an_empty_budget_drops_warns_once_then_closes():
    b = budget(tokens=1, close_after=3)
    ping = json.dumps({"type": "ping"})
    assert isinstance(intake(ping, b=b), Accepted)
    outcomes = [intake(ping, b=b) for _ in range(3)]
    assert all(isinstance(o, Dropped) for o in outcomes)
    assert [o.verdict.outcome for o in outcomes] == [
        BudgetOutcome.DROP_AND_WARN,
        BudgetOutcome.DROP,
        BudgetOutcome.CLOSE,
    ]


def test_an_answer_to_a_pending_call_passes_an_empty_budget_but_nothing_else_does():
    b = budget(tokens=0)
    answer = json.dumps({"type": "tool_result", "id": "call-1", "result": {"rows": []}})
    stranger = json.dumps({"type": "tool_result", "id": "call-2", "result": {}})

    passed = intake(answer, b=b, pending={"call-1"})
    dropped = intake(stranger, b=b, pending={"call-1"})

    assert isinstance(passed, Accepted)
    assert isinstance(passed.frame, ToolResult)
    assert isinstance(dropped, Dropped)


def test_an_answer_leaves_a_budget_with_tokens_untouched():
    # given a budget of one token and a pending call
    b = budget(tokens=1)
    answer = json.dumps({"type": "tool_result", "id": "call-1", "row": None})
    # when the call is answered, then the answer is admitted as one
    passed = intake(answer, b=b, pending={"call-1"})
    assert isinstance(passed, Accepted)
    assert passed.answer
    # and the client's one token is still there for its own frame
    assert isinstance(intake(json.dumps({"type": "ping"}), b=b), Accepted)
    assert isinstance(intake(json.dumps({"type": "ping"}), b=b), Dropped)


def test_a_broken_answer_is_rejected_and_pays_like_any_frame():
    # given a budget of one token and a pending call
    b = budget(tokens=1)
    broken = json.dumps({"type": "tool_result", "id": "call-1", "rows": "not a list"})
    # when the answer fails validation, it is rejected naming the field
    result = intake(broken, b=b, pending={"call-1"})
    assert isinstance(result, Rejected)
    assert (result.code, "rows" in result.message) == ("invalid_frame", True)
    # and it spent the token: the next frame is over budget
    assert isinstance(intake(json.dumps({"type": "ping"}), b=b), Dropped)


def test_a_broken_answer_over_budget_is_still_rejected_not_dropped():
    result = intake(json.dumps({"type": "tool_result", "id": "call-1", "ok": "yes?"}), b=budget(0), pending={"call-1"})
    assert isinstance(result, Rejected)
    assert result.code == "invalid_frame"


@pytest.mark.parametrize(
    ("frame", "where"),
    [
        ({"type": "device_hello", "device_id": "d", "name": "a\u0000b"}, "name"),
        ({"type": "device_hello", "device_id": "d", "agent_ids": ["ok", "\ud800"]}, "agent_ids.1"),
        ({"type": "resume", "request_id": "\udfff", "after_seq": 0}, "request_id"),
        ({"type": "ping", "x": {"\ud800": 1}}, "x"),
    ],
)
def test_nul_or_a_lone_surrogate_anywhere_is_an_invalid_frame_naming_the_field(frame, where):
    result = intake(json.dumps(frame))
    assert isinstance(result, Rejected)
    assert result.code == "invalid_frame"
    assert f"frame: {where}:" in result.message
    assert result.request_id is None


def test_escaped_text_that_is_storable_passes():
    result = intake(json.dumps({"type": "device_hello", "device_id": "d", "name": "caf\u00e9 \U0001f600 \\u0000"}))
    assert isinstance(result, Accepted)
