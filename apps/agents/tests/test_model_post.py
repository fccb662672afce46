"""An extraction's request goes straight to the model's HTTP client: what the SDK would send, retried
and failed as the SDK retries and fails it, and metered once per answered call."""

from __future__ import annotations

import socket

import openai
import pytest
from asgiref.sync import sync_to_async

from apps.agents.extraction import PROPOSAL_TOOL, Extractor, Source, extraction_prompt
from apps.assistant.llm import ModelRole, chat_model
from apps.assistant.testing.scripted_openai import Reply, ToolCall, Usage, failure
from apps.billing.budgets import llm_budgeted_async
from apps.billing.metering import LlmPurpose

SOURCE = Source(kind="file", label="a.md", text="Call Anna on Monday")
ANSWER = Reply(tool_calls=[ToolCall(PROPOSAL_TOOL, {"tasks": [{"title": "Call Anna"}]})])
CALL_ANNA = [("tasks", {"title": "Call Anna", "isAiSuggested": 1, "isApproved": 0})]


def extractor() -> Extractor:
    return Extractor(model=chat_model(ModelRole.SUBAGENT), prompt_template="", data_types=["tasks"], max_chars=1000)


async def test_an_extraction_posts_the_request_the_sdk_posts(llm):
    # given a run's extractor and one file's request
    ours = extractor()
    body = ours.request(extraction_prompt(prompt_template="", data_types=["tasks"], source=SOURCE, max_chars=1000))
    llm.fallback = lambda _: ANSWER

    # when the SDK posts it, and then the extractor
    await ours.client.post("/chat/completions", body=body, cast_to=object)
    await ours.poster.post(body)

    # then both reached the same path with the same body, key, content type and client name
    by_sdk, direct = llm.chat_requests()
    assert (direct.path, direct.body) == (by_sdk.path, by_sdk.body)
    for header in ("authorization", "content-type", "accept", "user-agent", "x-stainless-lang"):
        assert direct.headers.get(header) == by_sdk.headers.get(header), header
    assert direct.headers["authorization"] == "Bearer sk-scripted"


async def test_what_the_sdk_retries_is_retried_and_the_answer_read(llm, settings):
    # given two retries, and a model failing twice before it answers
    settings.ASSISTANT_LLM_MAX_RETRIES = 2
    llm.script(failure(500), failure(429), ANSWER)

    # when a file is extracted
    extraction = await extractor().extract(SOURCE)

    # then it took three requests, and the answer was read
    assert len(llm.chat_requests()) == 3
    assert extraction.items == CALL_ANNA


@pytest.mark.parametrize(
    ("retries", "statuses", "error", "requests"),
    [
        (2, [400], openai.BadRequestError, 1),  # the SDK never retries a bad request
        (2, [401], openai.AuthenticationError, 1),
        (0, [429], openai.RateLimitError, 1),  # no retries configured
        (0, [500], openai.InternalServerError, 1),
        (1, [500, 503], openai.InternalServerError, 2),  # the retries run out
    ],
)
async def test_a_failed_call_raises_the_sdks_error_after_the_sdks_attempts(
    llm, settings, retries, statuses, error, requests
):
    # given a model failing with these statuses
    settings.ASSISTANT_LLM_MAX_RETRIES = retries
    llm.script(*(failure(status, text="scripted failure") for status in statuses), ANSWER)

    # when a file is extracted, then the SDK's error class is raised after as many requests as it makes
    with pytest.raises(error, match=f"Error code: {statuses[-1]} - scripted failure"):
        await extractor().extract(SOURCE)
    assert len(llm.chat_requests()) == requests


async def test_a_model_that_cannot_be_reached_raises_the_sdks_connection_error(llm, settings):
    with socket.socket() as closed:  # a port nothing listens on once this socket is closed
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    settings.ASSISTANT_LLM_MAX_RETRIES = 0
    settings.OPENAI_BASE_URL = f"http://127.0.0.1:{port}/v1"

    with pytest.raises(openai.APIConnectionError):
        await extractor().extract(SOURCE)


@pytest.mark.django_db(transaction=True)
async def test_a_retried_extraction_is_metered_once_for_its_answer(llm, settings, user):
    from apps.billing.models import LlmUsage

    # given a model that fails once, then answers with its usage
    settings.ASSISTANT_LLM_MAX_RETRIES = 1
    llm.script(failure(500), Reply(tool_calls=ANSWER.tool_calls, usage=Usage(prompt=900, completion=40, cached=0)))

    # when a file is extracted for the user's run
    async with llm_budgeted_async(user_id=user.id, purpose=LlmPurpose.AGENT_EXTRACTION, run_id="r1"):
        extraction = await extractor().extract(SOURCE)

    # then the answered call is recorded once, with its reported usage
    recorded = LlmUsage.objects.filter(user=user).values_list("prompt_tokens", "completion_tokens")
    rows = await sync_to_async(list)(recorded)
    assert extraction.items == CALL_ANNA
    assert rows == [(900, 40)]
