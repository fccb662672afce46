"""A streamed call's meter outside the socket: where its record goes when the stream is closed late."""

from __future__ import annotations

import contextvars
import uuid

import pytest

from apps.assistant.metered_calls import MeteredCall
from apps.billing.metering import LlmAttribution, LlmPurpose, llm_records_deferred
from apps.billing.models import LlmUsage

pytestmark = pytest.mark.django_db


def test_a_stream_closed_outside_its_turns_context_is_still_held_for_the_turn(user):
    # given a chat turn that holds its records, and a streamed call it watches
    attribution = LlmAttribution(user_id=user.id, purpose=LlmPurpose.CHAT, run_id=str(uuid.uuid4()))
    with llm_records_deferred() as deferred:
        call = MeteredCall(attribution=attribution, model="m", payload={"messages": []}).watch()
        call.observe({"choices": [{"delta": {"content": "hi"}}]})

        # when the stream's generator is closed by the garbage collector, in another context (a
        # cancelled turn: asyncio finalises async generators outside the task that read them)
        contextvars.Context().run(call.settle)

        # then its record waits for the turn (written with the turn's others), not written on its own
        assert [r.call_id for r in deferred.records] == [call.call_id]
        assert not LlmUsage.objects.filter(user=user).exists()
    # and the turn's end does not settle it a second time
    deferred.close()
    assert [r.call_id for r in deferred.records] == [call.call_id]
