"""One HTTP request through an ASGI app in this process, as an ASGI server would make it."""

from __future__ import annotations

import asyncio
from typing import Any

from asgiref.sync import SyncToAsync


async def asgi_get(app: Any, route: str) -> int:
    """One GET through ``app`` as an ASGI server calls it; the response status."""
    status, _headers, _body = await asgi_get_response(app, route)
    return status


async def asgi_get_response(
    app: Any, route: str, *, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One GET through ``app`` (with ``headers``): the status, the headers (lower-cased names) and the body."""
    return await asgi_request(app, "GET", route, headers=headers)


async def asgi_request(
    app: Any, method: str, route: str, *, headers: dict[str, str] | None = None, body: bytes = b""
) -> tuple[int, dict[str, str], bytes]:
    """One request through ``app``: the status, the headers (lower-cased names) and the body."""
    path, _, query = route.partition("?")
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": [(b"host", b"localhost"), *((k.lower().encode(), v.encode()) for k, v in (headers or {}).items())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
        "scheme": "http",
        "http_version": "1.1",
        "asgi": {"version": "3.0"},
    }
    sent: list[dict] = []
    body_sent = asyncio.Event()

    async def receive() -> dict:
        if not body_sent.is_set():
            body_sent.set()
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client never leaves
        return {}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = sent[0]
    response_headers = {name.decode().lower(): value.decode() for name, value in start.get("headers", [])}
    answer = b"".join(message.get("body", b"") for message in sent[1:])
    return start["status"], response_headers, answer


def thread_trips_counted(monkeypatch: Any) -> list[str]:
    """From now on (until the test ends), the name of every function sent to a thread with
    ``sync_to_async``, in order."""
    trips: list[str] = []
    real_call = SyncToAsync.__call__

    def counted(self: SyncToAsync, *args: Any, **kwargs: Any) -> Any:
        trips.append(getattr(self.func, "__qualname__", repr(self.func)))
        return real_call(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__call__", counted)
    return trips
