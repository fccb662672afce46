"""One chat-completions request of an extraction, posted on the model's own HTTP client.

The OpenAI SDK's ``post`` builds its request options, headers and retry bookkeeping anew for every
call, about 0.3 ms of CPU each, a tenth of a local run's work per file in the worker. An
extraction's request is always the same shape, so its first attempt goes straight to the HTTP
client the SDK itself uses: the same URL, body bytes, headers (``x-stainless-retry-count: 0`` and
the read timeout included), timeout and metering hook as the SDK's first attempt.

Anything but a 200 with a JSON answer is the SDK's business again, and the SDK's own request loop
takes it over from its first attempt: a copy of the model client (``with_options``) whose HTTP
client answers the SDK's first send with what the fast attempt got (the response, or the exception
the HTTP client raised, an event hook's included) and sends every later attempt on the model's own
client. So the SDK decides whether to retry, waits its own back-off (0.5, 1, 2 s… or the server's
Retry-After, an HTTP date included), numbers its retries (``x-stainless-retry-count: 1``, ``2``…),
wraps what it wraps (``APIConnectionError``, ``APITimeoutError``), raises its own status errors, and
reads a 2xx or non-JSON answer as it does; nothing of that is re-implemented here (the SDK has no
public way to start its loop at a later attempt, so it is handed the first one's outcome instead).

What is re-done here is the first attempt alone: its headers (the SDK's ``_build_headers`` for
retry 0, from the public ``auth_headers``, ``default_headers`` and ``timeout``) and its body bytes
(``BodyEncoder``). A client the first attempt cannot speak for (an API-key provider, workload
identity or another provider's runtime: the SDK prepares each of its requests) is posted to through
the SDK alone; telling them apart reads two private attributes (``speaks_for``). The tests compare
every attempt (bytes, header names, order and values, delays, exceptions) with the SDK's own ``post``
at the HTTP level, and check those attributes still exist: an SDK upgrade that changes any of it
fails them.
"""

from __future__ import annotations

import contextvars
import math
from typing import Any

import httpx2
import openai
import orjson

# What the SDK's first attempt has got, for the SDK's own request loop to take over (task-local:
# concurrent extractions on one client each hand over their own).
_first_outcome: contextvars.ContextVar[httpx2.Response | Exception | None] = contextvars.ContextVar(
    "model_post_first_outcome", default=None
)


class CompletionPoster:
    """Posts chat-completions bodies for one model client (``openai.AsyncOpenAI``) on ``http``."""

    def __init__(self, *, client: openai.AsyncOpenAI, http: httpx2.AsyncClient) -> None:
        self.client = client
        self.http = http
        self.url = f"{client.base_url}chat/completions"
        self.headers = first_attempt_headers(client)
        self.direct = speaks_for(client)
        self.encode = BodyEncoder()
        self._taking_over: openai.AsyncOpenAI | None = None

    async def post(self, body: dict[str, Any]) -> Any:
        """The decoded JSON answer; raises what the SDK's ``post`` raises for the same request."""
        content = self.encode(body) if self.direct else None
        if content is None:  # not the JSON the SDK would send byte for byte: the SDK sends it
            return await self.client.post("/chat/completions", body=body, cast_to=object)
        try:
            response = await self.http.post(
                self.url, content=content, headers=self.headers, timeout=self.client.timeout
            )
        except Exception as exc:  # retried, wrapped or raised as is: the SDK decides
            return await self._take_over(body, exc)
        if response.status_code == 200 and response.headers.get("content-type", "").split(";")[0].endswith("json"):
            try:
                return orjson.loads(response.content)
            except orjson.JSONDecodeError:
                pass  # the SDK raises its own decoding error for it
        return await self._take_over(body, response)

    async def _take_over(self, body: dict[str, Any], outcome: httpx2.Response | Exception) -> Any:
        if self._taking_over is None:
            self._taking_over = self.client.with_options(http_client=FirstAttemptReplay(self.http))
        token = _first_outcome.set(outcome)
        try:
            return await self._taking_over.post("/chat/completions", body=body, cast_to=object)
        finally:
            _first_outcome.reset(token)


class FirstAttemptReplay(httpx2.AsyncClient):
    """The HTTP client of the SDK's request loop once it takes an extraction over: its first send
    answers (or raises) what the fast first attempt got, every later one goes to the model's client
    (and its event hooks); requests are built by the model's client too (its headers and cookies)."""

    def __init__(self, http: httpx2.AsyncClient) -> None:
        # No transport of its own (and no CA bundle to load): every request is sent by ``http``.
        super().__init__(transport=httpx2.AsyncBaseTransport(), trust_env=False)
        self.http = http

    def build_request(self, *args: Any, **kwargs: Any) -> httpx2.Request:
        return self.http.build_request(*args, **kwargs)

    async def send(self, request: httpx2.Request, **kwargs: Any) -> httpx2.Response:
        outcome = _first_outcome.get()
        if outcome is None:
            return await self.http.send(request, **kwargs)
        _first_outcome.set(None)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


class BodyEncoder:
    """The bytes the SDK sends for a body (its ``openapi_dumps``: ``json.dumps`` with httpx's JSON
    defaults), or None for a body only the SDK's own encoder writes as it does.

    orjson writes plain JSON (dicts with string keys, lists, strings, 64-bit integers, booleans, null
    and most floats) byte for byte as ``json.dumps`` does, ~20-50 times faster for an extraction's
    12 KB; it writes some floats (``0.00001`` for ``1e-05``) and other types (dates, dataclasses)
    differently or not at all.
    So a body is checked to be plain first: each top-level value once while it stays the same object
    from one body to the next (an extraction's model, tools and tool choice are built once per run,
    and never changed in place), only the new ones (its messages) every time."""

    def __init__(self) -> None:
        self.checked: dict[str, Any] = {}  # the last body's plain values, by key

    def __call__(self, body: dict[str, Any]) -> bytes | None:
        checked: dict[str, Any] = {}
        for key, value in body.items():
            if not (type(key) is str and (self.checked.get(key, _UNSET) is value or plain(value))):
                return None
            checked[key] = value
        self.checked = checked
        try:
            return orjson.dumps(body)
        except orjson.JSONEncodeError:  # a lone surrogate, an integer past 64 bits
            return None


_UNSET = object()


def plain(value: Any) -> bool:
    """Whether ``value`` is JSON orjson writes as ``json.dumps`` does: no other types, and floats
    only where orjson's form is Python's (``0.2``, not ``1e-05``; never NaN, which the SDK refuses)."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return True
    if kind is float:
        return math.isfinite(value) and orjson.dumps(value) == repr(value).encode()
    if kind is dict:
        return all(type(key) is str and plain(item) for key, item in value.items())
    if kind is list or kind is tuple:
        return all(plain(item) for item in value)
    return False


def first_attempt_headers(client: openai.AsyncOpenAI) -> dict[str, str]:
    """The headers of the SDK's first attempt, in its order and, as it sends them, in lower case: the
    API key, its default headers (unset optional ones, organisation and project, left out), the retry
    count and the read timeout."""
    headers = {name.lower(): value for name, value in client.auth_headers.items()}
    for name, value in client.default_headers.items():
        if isinstance(value, str):
            headers[name.lower()] = value
    headers["x-stainless-retry-count"] = "0"
    timeout = client.timeout
    read = timeout.read if isinstance(timeout, httpx2.Timeout) else timeout
    if read is not None:
        headers["x-stainless-read-timeout"] = str(read)
    return headers


def speaks_for(client: openai.AsyncOpenAI) -> bool:
    """Whether the first attempt sends what the SDK would: a fixed API key, no per-request auth."""
    return (
        getattr(client, "workload_identity", None) is None
        and getattr(client, "_api_key_provider", None) is None
        and getattr(client, "_provider_runtime", None) is None
        and bool(client.auth_headers)
    )
