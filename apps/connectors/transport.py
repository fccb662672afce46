"""One HTTP policy for every provider call: bearer auth, 401 → refresh once, 429, 5xx.

``ProviderSession.send`` is used directly by the Graph client, by the token endpoint client and,
through ``GoogleHttpAdapter``, by google-api-python-client, so Gmail and Graph share the same
retry rules:

- 401: ask the token source for a new token once (naming the rejected one) and retry; a second
  401 raises ``AccessTokenRejected`` (the grant needs a reconnect).
- 429 (and Google's 403 ``rateLimitExceeded``): wait ``Retry-After`` when it is short enough,
  else raise ``provider_rate_limited`` carrying ``retry_after``.
- 5xx and network errors: a bounded number of retries with exponential backoff, then
  ``provider_unavailable``.
"""

from __future__ import annotations

import email.utils
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import httplib2
import httpx
from django.conf import settings

from .error_codes import ConnectorErrorCode
from .errors import ConnectorError, rate_limited

logger = logging.getLogger(__name__)


class TokenSource(Protocol):
    """Gives a valid access token; ``rejected`` names one the provider has just refused."""

    def __call__(self, *, rejected: str | None = None) -> str: ...


class AccessTokenRejected(Exception):
    """The provider refused a token even right after a refresh: the grant must be reconnected."""


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 3
    backoff_seconds: float = 0.5
    retry_after_max_seconds: float = 30.0

    @classmethod
    def from_settings(cls) -> RetryPolicy:
        return cls(
            max_retries=settings.CONNECTORS_HTTP_MAX_RETRIES,
            backoff_seconds=settings.CONNECTORS_HTTP_BACKOFF_SECONDS,
            retry_after_max_seconds=settings.CONNECTORS_RETRY_AFTER_MAX_SECONDS,
        )

    def backoff(self, attempt: int) -> float:
        return self.backoff_seconds * 2 ** (attempt - 1)


def retry_after_seconds(value: str | None, *, default: float) -> float:
    """``Retry-After`` as seconds: an integer or an HTTP date; ``default`` when absent or unreadable."""
    if not value:
        return default
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _is_rate_limit(response: httpx.Response) -> bool:
    if response.status_code == 429:
        return True
    # Gmail signals per-user quota exhaustion as 403 with reason rateLimitExceeded.
    return response.status_code == 403 and b"ratelimitexceeded" in response.content[:2000].lower()


class ProviderSession:
    """Sends requests to one provider for one grant under the shared retry policy."""

    def __init__(
        self,
        *,
        provider: str,
        token_source: TokenSource | None = None,
        policy: RetryPolicy | None = None,
        timeout: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.provider = provider
        self._token_source = token_source
        self._token: str | None = None
        self.policy = policy or RetryPolicy.from_settings()
        self._sleep = sleep
        self._client = httpx.Client(
            # No redirects: a bearer token goes only to the URL we built or checked.
            timeout=timeout if timeout is not None else settings.CONNECTORS_HTTP_TIMEOUT,
            follow_redirects=False,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ProviderSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _unavailable(self, detail: str) -> ConnectorError:
        return ConnectorError(
            ConnectorErrorCode.PROVIDER_UNAVAILABLE,
            f"{self.provider} is unavailable ({detail}); try again later.",
            extra={"provider": self.provider},
        )

    def send(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        content: bytes | str | None = None,
        data: dict[str, str] | None = None,
    ) -> httpx.Response:
        """The provider's answer once the policy is satisfied (2xx, or a 4xx the caller reads)."""
        if self._token_source is not None and self._token is None:
            self._token = self._token_source()
        refreshed = False
        failures = 0
        rate_waits = 0
        while True:
            request_headers = dict(headers or {})
            if self._token is not None:
                request_headers["Authorization"] = f"Bearer {self._token}"
            try:
                response = self._client.request(
                    method, url, params=params, headers=request_headers, content=content, data=data
                )
            except httpx.TransportError as exc:
                failures += 1
                if failures > self.policy.max_retries:
                    raise self._unavailable(type(exc).__name__) from exc
                self._sleep(self.policy.backoff(failures))
                continue
            status = response.status_code
            if status == 401 and self._token_source is not None:
                if refreshed:
                    raise AccessTokenRejected(f"{self.provider} refused a freshly refreshed access token")
                self._token = self._token_source(rejected=self._token)
                refreshed = True
                continue
            if _is_rate_limit(response):
                wait = retry_after_seconds(response.headers.get("Retry-After"), default=self.policy.backoff(1))
                rate_waits += 1
                if wait > self.policy.retry_after_max_seconds or rate_waits > self.policy.max_retries:
                    raise rate_limited(provider=self.provider, retry_after=max(1, math.ceil(wait)))
                logger.info("connector rate limited", extra={"provider": self.provider, "wait_seconds": wait})
                self._sleep(wait)
                continue
            if status >= 500:
                failures += 1
                if failures > self.policy.max_retries:
                    raise self._unavailable(f"HTTP {status}")
                self._sleep(self.policy.backoff(failures))
                continue
            return response


class GoogleHttpAdapter:
    """The ``httplib2.Http`` interface google-api-python-client calls, sent through a ``ProviderSession``."""

    # Headers that describe httpx's transfer, not the (already decoded) body handed back.
    _TRANSFER_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})

    def __init__(self, session: ProviderSession) -> None:
        self.session = session

    def request(
        self,
        uri: str,
        method: str = "GET",
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        redirections: int = 5,
        connection_type: object = None,
    ) -> tuple[httplib2.Response, bytes]:
        response = self.session.send(method, uri, headers=headers, content=body)
        info = {k.lower(): v for k, v in response.headers.items() if k.lower() not in self._TRANSFER_HEADERS}
        info["status"] = str(response.status_code)
        resp = httplib2.Response(info)
        resp.reason = response.reason_phrase
        return resp, response.content
