"""The calls a socket awaits answers to (tool calls and calls other frames opened), and which
incoming frames answer them: one book for every kind of call."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from apps.devices.answer_frames import AnswerBook, AnswerOf, register_answer_frame, unregister_answer_frame

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def probe_answers():
    register_answer_frame("probe_data", AnswerOf(opened_by="probe", key="probe_id"))
    register_answer_frame("probe_done", AnswerOf(opened_by="probe", key="probe_id", closes=True))
    yield
    unregister_answer_frame("probe_data")
    unregister_answer_frame("probe_done")


def sent(book: AnswerBook, probe_id: str | None, frame_type: str = "probe") -> None:
    book.frame_sent(SimpleNamespace(type=frame_type, probe_id=probe_id))


def test_only_answers_to_a_call_this_socket_opened_are_answers(probe_answers):
    # given one probe sent
    book = AnswerBook()
    sent(book, "p1")
    # then its pieces are answers; another call's, a non-string key and other types are not
    assert book.awaits_answers()
    assert book.is_answer({"type": "probe_data", "probe_id": "p1"})
    assert book.is_answer({"type": "probe_done", "probe_id": "p1"})
    assert not book.is_answer({"type": "probe_data", "probe_id": "p2"})
    assert not book.is_answer({"type": "probe_data", "probe_id": ["p1"]})
    assert not book.is_answer({"type": "ping", "probe_id": "p1"})


def test_the_closing_answer_closes_the_call_and_others_do_not(probe_answers):
    book = AnswerBook()
    sent(book, "p1")
    book.answer_admitted({"type": "probe_data", "probe_id": "p1"})
    assert book.is_answer({"type": "probe_data", "probe_id": "p1"})
    book.answer_admitted({"type": "probe_done", "probe_id": "p1"})
    assert not book.is_answer({"type": "probe_data", "probe_id": "p1"})
    assert not book.awaits_answers()
    assert book.open_calls is None  # the last call closed: no record kept


def test_frames_that_open_nothing_record_nothing_and_make_no_record(probe_answers):
    # given a book that only sent frames opening no call (a progress frame, a probe without its key)
    book = AnswerBook()
    sent(book, "p1", frame_type="agent_progress")
    sent(book, None)
    # then it holds no record of open calls at all (made on the first call, not per socket)
    assert book.open_calls is None
    assert not book.awaits_answers()


def test_the_open_calls_are_capped_by_the_setting_and_the_oldest_goes_first(probe_answers, settings):
    # given a cap of two and three probes sent
    settings.DEVICE_OPEN_CALLS_CAP = 2
    book = AnswerBook()
    for probe_id in ("p1", "p2", "p3"):
        sent(book, probe_id)
    # then the first lost its exemption
    assert len(book.open_calls or ()) == 2
    assert not book.is_answer({"type": "probe_data", "probe_id": "p1"})
    assert book.is_answer({"type": "probe_data", "probe_id": "p3"})


def test_one_outgoing_type_has_one_key_field(probe_answers):
    with pytest.raises(ValueError, match="keyed by"):
        register_answer_frame("probe_other", AnswerOf(opened_by="probe", key="other_id"))


def test_a_tool_result_answers_exactly_the_calls_in_the_pending_table():
    # given a socket with one tool call in flight (its pending table) and no other open call
    book = AnswerBook()
    book.pending = {"call-1"}
    # then only a result naming that call is an answer
    assert book.awaits_answers()
    assert book.is_answer({"type": "tool_result", "id": "call-1"})
    assert not book.is_answer({"type": "tool_result", "id": "call-2"})
    assert not book.is_answer({"type": "tool_result", "id": 1})
    # and admitting it leaves the call to its handler, which resolves it in the pending table
    book.answer_admitted({"type": "tool_result", "id": "call-1"})
    assert book.is_answer({"type": "tool_result", "id": "call-1"})
    assert book.open_calls is None


def test_a_sent_tool_call_frame_is_left_to_the_pending_table():
    book = AnswerBook()
    book.frame_sent(SimpleNamespace(type="tool_call", id="call-1"))
    assert book.open_calls is None
    assert not book.is_answer({"type": "tool_result", "id": "call-1"})


@pytest.mark.parametrize("name", ["DEVICE_ANSWERS_IN_FLIGHT", "DEVICE_OPEN_CALLS_CAP"])
def test_the_answer_settings_must_be_positive(name):
    result = subprocess.run(
        [sys.executable, "-c", "import adiuva.settings.devices"],
        cwd=ROOT,
        env={**os.environ, name: "0"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert f"{name} must be at least 1" in result.stderr


def test_a_call_opened_on_an_earlier_socket_is_awaited_on_this_one(probe_answers):
    # given a socket that sent nothing itself
    book = AnswerBook()
    # when a call sent on an earlier socket of the device is re-opened here
    book.call_opened("probe", "p1")
    # then its answers are awaited, and its closing answer closes it
    assert book.is_answer({"type": "probe_data", "probe_id": "p1"})
    assert not book.is_answer({"type": "probe_data", "probe_id": "p2"})
    book.answer_admitted({"type": "probe_done", "probe_id": "p1"})
    assert book.open_calls is None


def test_only_answers_to_calls_not_yet_awaited_may_answer_a_call_a_hello_re_opens(probe_answers):
    # given a socket that awaits probe p1
    book = AnswerBook()
    book.call_opened("probe", "p1")
    # then a piece of another probe may answer a call its hello is re-opening; p1's already is one,
    # and tool results (the pending table's), other frame types and keys that are no string never are
    assert book.may_answer_a_reopened_call({"type": "probe_data", "probe_id": "p2"})
    assert not book.may_answer_a_reopened_call({"type": "probe_data", "probe_id": "p1"})
    assert not book.may_answer_a_reopened_call({"type": "tool_result", "id": "c1"})
    assert not book.may_answer_a_reopened_call({"type": "ping"})
    assert not book.may_answer_a_reopened_call({"type": "probe_data", "probe_id": 7})
    assert AnswerBook().may_answer_a_reopened_call({"type": "probe_done", "probe_id": "p1"})


@pytest.mark.parametrize("opened_by", ["tool_call", "never_registered"])
def test_only_a_registered_opener_other_than_tool_call_can_be_re_opened(opened_by):
    book = AnswerBook()
    with pytest.raises(ValueError, match="opens no call"):
        book.call_opened(opened_by, "k")
    assert book.open_calls is None
