"""An extraction's request goes straight to the model's HTTP client: what the SDK would send, retried
and failed as the SDK retries and fails it, and metered once per answered call."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import enum
import json
import random
import socket
import ssl
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anyio
import httpx2
import openai
import pytest
from asgiref.sync import sync_to_async

from apps.agents import model_post
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


# --- Every attempt as the SDK's own ``post`` makes it -------------------------------------------
# The model below answers at the HTTP level from a script of (status, headers, body) and records each
# request as it reached the socket (header names, order and values; body bytes). Each case runs the
# SDK's ``client.post`` and then the extractor's poster on a fresh model client for the same script,
# with the same random jitter, and the retry back-offs captured at the sleep (never waited).


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0  # seconds before answering


COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "scripted",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "done"}, "finish_reason": "stop"}],
}


def ok(**headers: str) -> Answer:
    return Answer(200, {"Content-Type": "application/json", **headers}, json.dumps(COMPLETION).encode())


def failed(status: int, message: str = "scripted failure", **headers: str) -> Answer:
    body = json.dumps({"error": {"message": message, "type": "server_error", "code": None}}).encode()
    return Answer(status, {"Content-Type": "application/json", **headers}, body)


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # a client gone before its answer (a timeout, a failing hook): nothing to report


class RawModel:
    """A model endpoint answering a script at the HTTP level and recording the requests it got."""

    def __init__(self) -> None:
        self.script: list[Answer] = []
        self.requests: list[tuple[str, list[tuple[str, str]], bytes]] = []
        model = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                content = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                model.requests.append((self.path, list(self.headers.items()), content))
                answer = model.script.pop(0) if model.script else ok()
                time.sleep(answer.delay)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def _raw_model() -> Iterator[RawModel]:
    model = RawModel()
    yield model
    model.server.shutdown()
    model.server.server_close()


@pytest.fixture
def raw_model(_raw_model, settings) -> RawModel:
    settings.OPENAI_API_KEY = "sk-scripted"
    settings.OPENAI_BASE_URL = _raw_model.base_url
    _raw_model.script, _raw_model.requests = [], []
    return _raw_model


@pytest.fixture
def back_offs(monkeypatch) -> list[float]:
    """The delays slept between attempts, each returning at once: the SDK's (it sleeps with anyio)
    and the poster's (ec5c4bc's first retry slept with asyncio). Anyone else's sleep is left alone
    (a poller of another test still running must not spin)."""
    slept: list[float] = []
    wait = asyncio.sleep
    retrying = ("openai.", "apps.agents.model_post")

    def sleeper(original: Any) -> Any:
        async def sleep(delay: float, *args: Any, **kwargs: Any) -> Any:
            if not sys._getframe(1).f_globals.get("__name__", "").startswith(retrying):
                return await original(delay, *args, **kwargs)
            slept.append(delay)
            return await wait(0)

        return sleep

    monkeypatch.setattr(anyio, "sleep", sleeper(anyio.sleep))
    monkeypatch.setattr(asyncio, "sleep", sleeper(asyncio.sleep))
    return slept


@dataclass
class Attempts:
    outcome: Any  # the answer, or (exception class, text, status, body, cause class)
    requests: list[tuple[str, list[tuple[str, str]], bytes]]
    back_offs: list[float]


BODY = {
    "model": "scripted",
    "stream": False,
    "messages": [{"role": "user", "content": 'Ruf Anna an \u2013 \u00e9t\u00e9 \U0001f600 "q" \\ \t \x01'}],
    "temperature": 0.2,
    "tools": [{"type": "function", "function": {"name": "propose", "parameters": {"type": "object"}}}],
}


def after_the_first_attempt(post: Any, raw_model: RawModel) -> Any:
    """The client's ``post``, refusing to send a first attempt (the poster's own)."""

    async def sdk_post(*args: Any, **kwargs: Any) -> Any:
        if not raw_model.requests:
            raise AssertionError("the SDK was asked to post the first attempt, which the poster sends itself")
        return await post(*args, **kwargs)

    return sdk_post


async def attempts(
    raw_model: RawModel, back_offs: list[float], script: list[Answer], *, by_sdk: bool, hook: Any = None
) -> Attempts:
    raw_model.script, raw_model.requests = list(script), []
    back_offs.clear()
    ours = extractor()
    assert ours.poster is not None  # a model built by chat_model has its own HTTP client
    if hook is not None:
        http = ours.poster.http
        http.event_hooks = {**http.event_hooks, "response": [*http.event_hooks["response"], hook()]}
    if not by_sdk:
        ours.client.post = after_the_first_attempt(ours.client.post, raw_model)
    random.seed(19)
    try:
        if by_sdk:
            outcome = await ours.client.post("/chat/completions", body=BODY, cast_to=object)
        else:
            outcome = await ours.poster.post(BODY)
    except Exception as exc:
        cause = type(exc.__cause__) if exc.__cause__ is not None else None
        outcome = (type(exc), str(exc), getattr(exc, "status_code", None), getattr(exc, "body", None), cause)
    return Attempts(outcome, list(raw_model.requests), list(back_offs))


async def sdk_and_poster(raw_model, back_offs, script: list[Answer], hook: Any = None) -> tuple[Attempts, Attempts]:
    by_sdk = await attempts(raw_model, back_offs, script, by_sdk=True, hook=hook)
    poster = await attempts(raw_model, back_offs, script, by_sdk=False, hook=hook)
    return by_sdk, poster


def assert_same_attempts(poster: Attempts, by_sdk: Attempts) -> None:
    """What the caller sees first, then the waits, then every request as it reached the model."""
    assert poster.outcome == by_sdk.outcome
    assert poster.back_offs == by_sdk.back_offs
    assert len(poster.requests) == len(by_sdk.requests)
    assert poster.requests == by_sdk.requests


def retry_counts(run: Attempts) -> list[str | None]:
    return [{k.lower(): v for k, v in headers}.get("x-stainless-retry-count") for _, headers, _ in run.requests]


async def test_every_attempt_sends_the_sdks_bytes_and_headers_with_its_retry_count(raw_model, back_offs, settings):
    # given three retries and a model failing three times before it answers
    settings.ASSISTANT_LLM_MAX_RETRIES = 3
    script = [failed(500), failed(503), failed(429), ok()]

    # when the SDK posts the body, and then the poster
    by_sdk, poster = await sdk_and_poster(raw_model, back_offs, script)

    # then every attempt reached the model as the SDK's did: path, header names, order, values and body bytes
    assert retry_counts(by_sdk) == ["0", "1", "2", "3"]
    assert poster.requests == by_sdk.requests
    assert poster.outcome == by_sdk.outcome == COMPLETION


async def test_the_back_off_grows_as_the_sdks_after_the_first_retry(raw_model, back_offs, settings):
    # given three retries and a model failing every time
    settings.ASSISTANT_LLM_MAX_RETRIES = 3
    script = [failed(500)] * 4

    # when both post, with the same jitter
    by_sdk, poster = await sdk_and_poster(raw_model, back_offs, script)

    # then the poster waited the SDK's doubling back-off (not 0.5, 0.5, 1 s), and raised its error
    assert len(by_sdk.back_offs) == 3
    assert all(0.75 * 0.5 * 2**n <= delay <= 0.5 * 2**n for n, delay in enumerate(by_sdk.back_offs))
    assert poster.back_offs == by_sdk.back_offs
    assert len(poster.requests) == len(by_sdk.requests) == 4
    assert poster.outcome == by_sdk.outcome
    assert poster.outcome[0] is openai.InternalServerError


async def test_a_retry_after_date_is_honoured_on_the_first_retry(raw_model, back_offs, settings):
    # given a rate limit asking to come back in 30 s, as an HTTP date
    settings.ASSISTANT_LLM_MAX_RETRIES = 1
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    script = [failed(429, **{"Retry-After": date}), ok()]

    # when both post
    by_sdk, poster = await sdk_and_poster(raw_model, back_offs, script)

    # then both waited the server's half minute (the date has whole seconds), then got the answer
    assert len(by_sdk.back_offs) == len(poster.back_offs) == 1
    assert 25 < by_sdk.back_offs[0] <= 30
    assert abs(poster.back_offs[0] - by_sdk.back_offs[0]) < 2
    assert poster.outcome == by_sdk.outcome == COMPLETION


@pytest.mark.parametrize(
    "headers",
    [
        {"Retry-After": "3"},
        {"Retry-After-Ms": "1500"},
        {"Retry-After": "300"},  # past two minutes: not retried at all
        {"x-should-retry": "false"},
    ],
)
async def test_the_server_directed_retries_are_the_sdks(raw_model, back_offs, settings, headers):
    settings.ASSISTANT_LLM_MAX_RETRIES = 2
    script = [failed(503, **headers), failed(503, **headers), ok()]

    by_sdk, poster = await sdk_and_poster(raw_model, back_offs, script)

    assert_same_attempts(poster, by_sdk)


class Stumble:
    """A response hook (as the metering hook is one) raising ``error`` on the first response it sees."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.raised = False

    async def __call__(self, response: httpx2.Response) -> None:
        if not self.raised:
            self.raised = True
            raise self.error


@pytest.mark.parametrize(
    ("retries", "error", "raised"),
    [
        (1, ssl.SSLError("scripted TLS failure"), None),  # the SDK retries it, and the answer is read
        (0, ssl.SSLError("scripted TLS failure"), openai.APIConnectionError),  # ...and wraps it at the last attempt
        (1, httpx2.DecodingError("scripted decoding failure"), None),  # an httpx error that is no transport error
        (1, RuntimeError("scripted hook failure"), RuntimeError),  # what it does not know comes through as is
    ],
)
async def test_an_event_hook_failing_on_the_first_attempt_is_handled_as_the_sdk_handles_it(
    raw_model, back_offs, settings, retries, error, raised
):
    # given a response hook failing on the first answer
    settings.ASSISTANT_LLM_MAX_RETRIES = retries

    # when both post
    by_sdk, poster = await sdk_and_poster(raw_model, back_offs, [ok(), ok()], hook=lambda: Stumble(error))

    # then the poster retried, wrapped or raised it as the SDK did
    assert_same_attempts(poster, by_sdk)
    if raised is None:
        assert poster.outcome == COMPLETION
    else:
        assert poster.outcome[0] is raised


@pytest.mark.parametrize(
    "answer",
    [
        failed(400, "bad tool schema"),  # the error's body is the provider's "error" object, as the SDK gives it
        failed(404),
        Answer(422, {"Content-Type": "text/plain"}, b"not JSON at all"),
        Answer(201, {"Content-Type": "application/json"}, json.dumps(COMPLETION).encode()),  # a success all the same
        Answer(200, {"Content-Type": "text/plain"}, b"plain text"),  # the SDK answers the text
        Answer(200, {"Content-Type": "application/json"}, b"{truncated"),  # the SDK's decoding error
    ],
)
async def test_an_answer_other_than_a_json_200_is_read_or_raised_as_the_sdk_does(
    raw_model, back_offs, settings, answer
):
    settings.ASSISTANT_LLM_MAX_RETRIES = 2

    by_sdk, poster = await sdk_and_poster(raw_model, back_offs, [answer])

    assert_same_attempts(poster, by_sdk)


async def test_a_timed_out_attempt_is_retried_and_raised_as_the_sdk_does(raw_model, back_offs, settings):
    # given a short timeout, one retry, and a model too slow twice
    settings.ASSISTANT_LLM_TIMEOUT = 0.2
    settings.ASSISTANT_LLM_MAX_RETRIES = 1
    slow = ok()
    slow.delay = 0.6

    # when both post
    by_sdk, poster = await sdk_and_poster(raw_model, back_offs, [slow, slow])

    # then both timed out twice, after the same back-off, with the SDK's timeout error
    assert_same_attempts(poster, by_sdk)
    assert poster.outcome[0] is openai.APITimeoutError
    assert len(poster.requests) == 2


async def test_a_model_that_cannot_be_reached_is_retried_as_the_sdk_retries_it(back_offs, settings):
    with socket.socket() as closed:  # a port nothing listens on once this socket is closed
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    settings.OPENAI_API_KEY = "sk-scripted"
    settings.OPENAI_BASE_URL = f"http://127.0.0.1:{port}/v1"
    settings.ASSISTANT_LLM_MAX_RETRIES = 2
    outcomes = []
    for by_sdk in (True, False):
        back_offs.clear()
        ours = extractor()
        assert ours.poster is not None
        random.seed(19)
        post = ours.client.post("/chat/completions", body=BODY, cast_to=object) if by_sdk else ours.poster.post(BODY)
        with pytest.raises(openai.APIConnectionError) as raised:
            await post
        outcomes.append((type(raised.value.__cause__), list(back_offs)))

    assert outcomes[0] == outcomes[1]
    assert len(outcomes[1][1]) == 2


async def test_concurrent_posts_hand_over_their_own_first_attempts(raw_model, back_offs, settings):
    # given one extractor without retries, and a model failing two concurrent requests differently
    settings.ASSISTANT_LLM_MAX_RETRIES = 0
    raw_model.script = [failed(500, "first"), failed(503, "second")]
    ours = extractor()

    # when both post at once
    results = await asyncio.gather(ours.poster.post(BODY), ours.poster.post(BODY), return_exceptions=True)

    # then each raised the error of its own answer (no hand-over saw the other's), and nothing was resent
    assert sorted(str(result) for result in results) == ["Error code: 500 - first", "Error code: 503 - second"]
    assert len(raw_model.requests) == 2


async def test_a_client_whose_requests_the_sdk_prepares_is_posted_to_by_the_sdk(raw_model, back_offs, settings):
    # given a model client asking a provider for its API key before each request
    keys = iter(["sk-first", "sk-second"])

    async def api_key() -> str:
        return next(keys)

    http = extractor().poster.http
    client = openai.AsyncOpenAI(api_key=api_key, base_url=raw_model.base_url, http_client=http, max_retries=0)
    poster = model_post.CompletionPoster(client=client, http=http)

    # when it posts twice
    answers = [await poster.post(BODY), await poster.post(BODY)]

    # then the SDK sent each request, with the key it was given for it
    keys_sent = [{k.lower(): v for k, v in headers}["authorization"] for _, headers, _ in raw_model.requests]
    assert answers == [COMPLETION, COMPLETION]
    assert keys_sent == ["Bearer sk-first", "Bearer sk-second"]


def test_the_sdk_still_has_the_attributes_that_say_it_prepares_each_request():
    # ``speaks_for`` reads them (no public API says so): an SDK that renames them must fail here, not
    # let the first attempt send what the SDK would not
    client = openai.AsyncOpenAI(api_key="sk-scripted")
    for attribute in ("workload_identity", "_api_key_provider", "_provider_runtime"):
        assert hasattr(client, attribute), attribute
    assert model_post.speaks_for(client)


class Level(enum.IntEnum):
    HIGH = 2


@pytest.mark.parametrize(
    ("value", "fast"),
    [
        ('Ruf Anna an \u2013 \U0001f600 "q" \\ \t \x01 \x7f \u2028', True),
        ([0, -1, 2**63, True, None, ("a", "b")], True),
        (0.2, True),
        (1.5e300, True),
        (5e-324, True),
        (0.00001, False),  # json writes 1e-05, orjson 0.00001
        (1e-7, False),
        (float("nan"), False),  # the SDK refuses it
        (2**64, False),  # past orjson's integers
        ("\ud800", False),  # a lone surrogate
        ({1: "a"}, False),  # json makes the key a string, orjson refuses it
        (Level.HIGH, False),
        (dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC), False),  # the SDK's encoder writes its isoformat
    ],
)
def test_the_body_is_the_sdks_bytes_or_left_to_the_sdk(value, fast):
    # given a body holding the value
    body = {"model": "scripted", "messages": [{"role": "user", "content": "hi"}], "extra": value}

    # when the poster encodes it (twice: the second time the value is the one it checked)
    encode = model_post.BodyEncoder()
    encoded = [encode(body), encode(body)]

    # then it wrote the SDK's bytes (what orjson writes as the SDK does), or left the body to the SDK
    if fast:
        sdk = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
        assert encoded == [sdk, sdk]
    else:
        assert encoded == [None, None]


async def test_a_body_only_the_sdk_writes_as_it_does_is_posted_by_the_sdk(raw_model, back_offs, settings):
    # given a body with a float orjson writes in another form than the SDK
    ours = extractor()
    assert ours.poster is not None
    body = {**BODY, "temperature": 0.00001}

    # when the SDK posts it, and then the poster
    await ours.client.post("/chat/completions", body=body, cast_to=object)
    await ours.poster.post(body)

    # then both sent the same bytes
    (_, _, by_sdk), (_, _, poster) = raw_model.requests
    assert b'"temperature":1e-05' in by_sdk
    assert poster == by_sdk
