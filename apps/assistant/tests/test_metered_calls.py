"""A streamed call's meter outside the socket: where its record goes when the stream is closed late."""

from __future__ import annotations

import contextvars
import uuid

import httpx
import pytest

from apps.assistant.metered_calls import MeteredCall, metering_hook
from apps.billing.metering import LlmAttribution, LlmCallUsage, LlmPurpose, llm_attribution, llm_records_deferred
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


@pytest.mark.parametrize(
    ("request_body", "answer", "model", "usage"),
    [
        # plain JSON both ways (what orjson reads)
        (
            b'{"model": "gpt-a", "messages": []}',
            b'{"usage": {"prompt_tokens": 7, "completion_tokens": 2}}',
            "gpt-a",
            (7, 2),
        ),
        # what only the standard library reads (NaN), in the request and in the answer
        (
            b'{"model": "gpt-b", "temperature": NaN}',
            b'{"usage": {"prompt_tokens": 11, "completion_tokens": 3}, "score": NaN}',
            "gpt-b",
            (11, 3),
        ),
        # an answer that is no JSON at all: the call is still recorded, with an estimate
        (b'{"model": "gpt-c", "messages": []}', b"<html>oops</html>", "gpt-c", None),
    ],
)
def test_a_complete_answer_is_metered_from_its_request_and_answer_bodies(user, request_body, answer, model, usage):
    # given an attributed call whose records are held, and the response hook of the model's client
    attribution = LlmAttribution(user_id=user.id, purpose=LlmPurpose.AGENT_EXTRACTION, run_id=str(uuid.uuid4()))
    request = httpx.Request("POST", "http://model.test/v1/chat/completions", content=request_body)
    response = httpx.Response(200, content=answer, headers={"content-type": "application/json"}, request=request)
    with llm_attribution(attribution), llm_records_deferred() as deferred:
        # when the hook sees the answer
        metering_hook(subagent=False)(response)

    # then one record, under the request's model, with the reported usage (or an estimate, marked so)
    [record] = deferred.records
    assert (record.model, record.attribution) == (model, attribution)
    if usage is None:
        assert record.estimated
    else:
        assert (record.usage, record.estimated) == (LlmCallUsage(prompt=usage[0], completion=usage[1], cached=0), False)
