"""The calls a socket opened with an outgoing frame, and which incoming frames answer them."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from apps.devices.answer_frames import AnswerOf, OpenCalls, register_answer_frame, unregister_answer_frame


@pytest.fixture
def probe_answers():
    register_answer_frame("probe_data", AnswerOf(opened_by="probe", key="probe_id"))
    register_answer_frame("probe_done", AnswerOf(opened_by="probe", key="probe_id", closes=True))
    yield
    unregister_answer_frame("probe_data")
    unregister_answer_frame("probe_done")


def sent(calls: OpenCalls, probe_id: str, frame_type: str = "probe") -> None:
    calls.sent(SimpleNamespace(type=frame_type, probe_id=probe_id))


def test_only_answers_to_a_call_this_socket_opened_are_answers(probe_answers):
    # given one probe sent
    calls = OpenCalls()
    sent(calls, "p1")
    # then its pieces are answers; another call's, a non-string key and other types are not
    assert calls.answers({"type": "probe_data", "probe_id": "p1"})
    assert calls.answers({"type": "probe_done", "probe_id": "p1"})
    assert not calls.answers({"type": "probe_data", "probe_id": "p2"})
    assert not calls.answers({"type": "probe_data", "probe_id": ["p1"]})
    assert not calls.answers({"type": "ping", "probe_id": "p1"})


def test_the_closing_answer_closes_the_call_and_others_do_not(probe_answers):
    calls = OpenCalls()
    sent(calls, "p1")
    calls.answered({"type": "probe_data", "probe_id": "p1"})
    assert calls.answers({"type": "probe_data", "probe_id": "p1"})
    calls.answered({"type": "probe_done", "probe_id": "p1"})
    assert not calls.answers({"type": "probe_data", "probe_id": "p1"})
    assert not calls


def test_frames_that_open_nothing_are_not_recorded(probe_answers):
    calls = OpenCalls()
    sent(calls, "p1", frame_type="agent_progress")
    calls.sent(SimpleNamespace(type="probe", probe_id=None))
    assert not calls


def test_the_open_calls_are_capped_and_the_oldest_goes_first(probe_answers):
    # given a cap of two and three probes sent
    calls = OpenCalls(cap=2)
    for probe_id in ("p1", "p2", "p3"):
        sent(calls, probe_id)
    # then the first lost its exemption
    assert len(calls) == 2
    assert not calls.answers({"type": "probe_data", "probe_id": "p1"})
    assert calls.answers({"type": "probe_data", "probe_id": "p3"})


def test_one_outgoing_type_has_one_key_field(probe_answers):
    with pytest.raises(ValueError, match="keyed by"):
        register_answer_frame("probe_other", AnswerOf(opened_by="probe", key="other_id"))
