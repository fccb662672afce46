"""Request body caps enforced at the ASGI layer, before Django reads (or spools to disk) a single byte.

Django's ASGI handler reads a whole request body into a temporary file before any view, and so
before authentication, runs. This middleware wraps the Django application (``adiuva/asgi.py``):

- a ``Content-Length`` over the route's cap is answered 413 at once; the body is never read;
- a chunked body is counted as it arrives and cut off (413) as soon as it passes the cap;
- caps come from ``REQUEST_BODY_LIMITS`` (longest path prefix wins), else ``REQUEST_BODY_MAX_BYTES``.

Routes in ``REQUEST_BODY_STREAMED_ROUTES`` (method, exact path) read their own body and enforce
their own cap (the backup upload: the user's remaining quota). They are passed through uncapped only
when the request carries a validly signed, unexpired access token; an anonymous or forged request gets
the generic cap like every other route, so nobody can make the server store a large anonymous body.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

from . import metrics
from .errors import CoreErrorCode
from .request_context import request_id_from_header

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class BodyLimits:
    default: int
    by_prefix: tuple[tuple[str, int], ...]  # longest prefix first
    streamed: frozenset[tuple[str, str]]

    @classmethod
    def from_settings(cls) -> BodyLimits:
        from django.conf import settings

        prefixes = sorted(settings.REQUEST_BODY_LIMITS.items(), key=lambda item: len(item[0]), reverse=True)
        return cls(
            default=settings.REQUEST_BODY_MAX_BYTES,
            by_prefix=tuple(prefixes),
            streamed=frozenset((method.upper(), path) for method, path in settings.REQUEST_BODY_STREAMED_ROUTES),
        )

    def cap_for(self, path: str) -> int:
        return next((cap for prefix, cap in self.by_prefix if path.startswith(prefix)), self.default)

    def is_streamed(self, method: str, path: str) -> bool:
        return (method.upper(), path.rstrip("/") or "/") in self.streamed


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    return next((value for key, value in headers if key.lower() == name), None)


def bearer_is_signed(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """The Authorization header holds an access token with a valid signature and expiry (no database)."""
    value = _header(headers, b"authorization")
    if not value:
        return False
    scheme, _, raw = value.decode("latin-1").partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        return False
    from rest_framework_simplejwt.exceptions import TokenError
    from rest_framework_simplejwt.tokens import AccessToken

    try:
        AccessToken(raw.strip())  # type: ignore[arg-type]  # simplejwt annotates the encoded string as a Token
    except TokenError:
        return False
    return True


async def _send_413(send: Send, headers: Iterable[tuple[bytes, bytes]], cap: int) -> None:
    metrics.body_too_large()
    request_id = request_id_from_header((_header(headers, b"x-request-id") or b"").decode("latin-1"))
    message = f"The request body is larger than this endpoint accepts ({cap} bytes)."
    body = json.dumps(
        {
            "code": CoreErrorCode.PAYLOAD_TOO_LARGE.value,
            "message": message,
            "detail": message,
            "limit_bytes": cap,
            "request_id": request_id,
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-request-id", request_id.encode()),
                # the unread body makes the connection unusable for another request
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, limits: BodyLimits | None = None) -> None:
        self.app = app
        self._limits = limits

    @property
    def limits(self) -> BodyLimits:
        if self._limits is None:
            self._limits = BodyLimits.from_settings()
        return self._limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers") or []
        path, method = scope.get("path", ""), scope.get("method", "GET")
        if self.limits.is_streamed(method, path) and bearer_is_signed(headers):
            await self.app(scope, receive, send)  # the route caps its own body, after authenticating
            return
        cap = self.limits.cap_for(path)
        declared = _header(headers, b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                length = -1
            if length > cap:
                await _send_413(send, headers, cap)
                return
        await self._call_counting(scope, receive, send, cap=cap, headers=headers)

    async def _call_counting(self, scope: Scope, receive: Receive, send: Send, *, cap: int, headers: Any) -> None:
        """Pass the body through while it stays under ``cap``; past it, answer 413 and tell the app the
        client went away (Django then abandons the request without answering)."""
        received = 0
        refused = False
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    refused = True
                    if not response_started:
                        await _send_413(send, headers, cap)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            if refused:
                return  # we already answered 413
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        await self.app(scope, counting_receive, guarded_send)
