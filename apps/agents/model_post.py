"""One chat-completions request of an extraction, posted on the model's own HTTP client.

The OpenAI SDK's ``post`` builds its request options, headers and retry bookkeeping anew for every
call, about 0.3 ms of CPU each, a tenth of a local run's work per file in the worker. An
extraction's request is always the same shape, so its first attempt goes straight to the HTTP
client the SDK itself uses (same URL, headers, timeout, and the metering hook on its responses).
Any other answer than a 200 is the SDK's business again: what it would retry is retried by the SDK
(with one retry fewer, after the SDK's first back-off), and what it would not retry raises the
error class the SDK raises for it, so callers see the same exceptions as before.
"""

from __future__ import annotations

import asyncio
import math
import random
from typing import Any

import httpx2
import openai
import orjson

# As the SDK (openai._constants): server-directed delays up to two minutes are honoured; otherwise
# the first retry waits half a second, less up to a quarter of it.
MAX_RETRY_AFTER_SECONDS = 120.0
FIRST_RETRY_SECONDS = 0.5
# The error class the SDK raises for an HTTP status (openai._client's _make_status_error).
STATUS_ERRORS: dict[int, type[openai.APIStatusError]] = {
    400: openai.BadRequestError,
    401: openai.AuthenticationError,
    403: openai.PermissionDeniedError,
    404: openai.NotFoundError,
    409: openai.ConflictError,
    422: openai.UnprocessableEntityError,
    429: openai.RateLimitError,
}


class CompletionPoster:
    """Posts chat-completions bodies for one model client (``openai.AsyncOpenAI``) on ``http``."""

    def __init__(self, *, client: openai.AsyncOpenAI, http: httpx2.AsyncClient) -> None:
        self.client = client
        self.http = http
        self.url = f"{client.base_url}chat/completions"
        # The SDK's headers for every request (content type, user agent, platform) and the API key;
        # its unset optional headers (organisation, project) are not strings and are left out.
        self.headers = {
            **{name: value for name, value in client.default_headers.items() if isinstance(value, str)},
            **client.auth_headers,
        }

    async def post(self, body: dict[str, Any]) -> Any:
        """The decoded JSON answer; raises what the SDK's ``post`` raises for the same request."""
        try:
            response = await self.http.post(
                self.url, content=orjson.dumps(body), headers=self.headers, timeout=self.client.timeout
            )
        except httpx2.TimeoutException as exc:
            return await self._retry_or_raise(body, openai.APITimeoutError(request=exc.request), None)
        except httpx2.TransportError as exc:
            return await self._retry_or_raise(body, openai.APIConnectionError(request=exc.request), None)
        if response.status_code == 200:
            return orjson.loads(response.content)
        await response.aread()
        return await self._retry_or_raise(body, status_error(response), response)

    async def _retry_or_raise(self, body: dict[str, Any], error: openai.APIError, response: httpx2.Response | None):
        retries = self.client.max_retries
        if retries <= 0 or (response is not None and not should_retry(response)):
            raise error
        await asyncio.sleep(first_retry_delay(response))
        return await self.client.post(
            "/chat/completions", body=body, cast_to=object, options={"max_retries": retries - 1}
        )


def status_error(response: httpx2.Response) -> openai.APIStatusError:
    """The SDK's error for a non-200 answer: its class by status, the decoded body, and the
    provider's message in the text."""
    message = f"Error code: {response.status_code}"
    body: Any = response.text.strip()
    try:
        body = orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    else:
        error = body.get("error", body) if isinstance(body, dict) else None
        detail = error.get("message") if isinstance(error, dict) else None
        if isinstance(detail, str) and detail:
            message += f" - {detail}"
    error_class = STATUS_ERRORS.get(response.status_code)
    if error_class is None:
        error_class = openai.InternalServerError if response.status_code >= 500 else openai.APIStatusError
    return error_class(message, response=response, body=body)


def _retry_after(response: httpx2.Response) -> float | None:
    for header, divisor in (("retry-after-ms", 1000), ("retry-after", 1)):
        value = response.headers.get(header)
        if value is not None:
            try:
                return float(value) / divisor
            except ValueError:
                continue
    return None


def should_retry(response: httpx2.Response) -> bool:
    """As the SDK: never past a two-minute Retry-After; the server's ``x-should-retry`` decides; else
    request timeouts, lock conflicts, rate limits and server errors are retried."""
    delay = _retry_after(response)
    if delay is not None and math.isfinite(delay) and delay > MAX_RETRY_AFTER_SECONDS:
        return False
    header = response.headers.get("x-should-retry")
    if header in ("true", "false"):
        return header == "true"
    return response.status_code in (408, 409, 429) or response.status_code >= 500


def first_retry_delay(response: httpx2.Response | None) -> float:
    delay = _retry_after(response) if response is not None else None
    if delay is not None and math.isfinite(delay) and 0 < delay <= MAX_RETRY_AFTER_SECONDS:
        return delay
    return FIRST_RETRY_SECONDS * (1 - 0.25 * random.random())  # noqa: S311 (jitter, not a secret)
