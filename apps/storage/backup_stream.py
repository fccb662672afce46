"""``PUT /api/v1/backup`` as a pure-ASGI route in front of Django: the body goes from the server's
receive loop to storage without Django's request machinery.

Django's ASGI handler spools every request body to a temporary file before the view runs, so a
backup was written to disk twice and read back once (0.10-0.13x a plain file copy). This route
reads the ASGI ``http.request`` messages itself, batches them into 1 MiB chunks and hands them
through a bounded queue to ``backups.backup_upload`` running in a worker thread (hashing and the
storage write happen there, off the event loop). At most ``QUEUE_DEPTH`` chunks wait, so memory
stays bounded whatever the size of the backup.

Everything the Django view did is kept: the access JWT (``AccessTokenAuthentication``), the
per-tier request budget, the tier gate, the quota, the ``X-Backup-*`` headers, the atomic
"latest" (``backup_upload``), ``X-Request-ID`` and the JSON error shape of
``apps.core.exception_handler``. The order is what makes it cheap to refuse: authentication,
headers, tier and quota (against ``Content-Length``) are all checked before the first byte of
the body is read; a body that outgrows the quota or its declared length is stopped as soon as
the streamed count says so. A client that disconnects mid-body leaves nothing behind (the
reserved row is marked failed and its bytes are deleted).

Every other request goes to ``inner`` (Django) untouched.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import queue
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

from django.db import connections
from rest_framework import exceptions
from rest_framework.renderers import JSONRenderer

from apps.accounts.authentication import AccessTokenAuthentication
from apps.billing.throttles import TierRateThrottle
from apps.core.errors import ApplicationError, CoreErrorCode
from apps.core.exception_handler import api_exception_handler, error_body
from apps.core.request_context import request_id_from_header, request_id_var

from .backups import BackupHeaders, backup_body_room_check, backup_headers_parse, backup_room, backup_upload
from .models import Backup

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

BACKUP_PATH = "/api/v1/backup"
BATCH_BYTES = 1024 * 1024
QUEUE_DEPTH = 8  # chunks waiting for the storage thread: at most ~8 MiB of a body in memory
# An upload holds a thread for as long as it lasts: its own pool, so long uploads never starve the
# event loop's default executor (``asyncio.to_thread`` and friends). Uploads beyond this wait.
UPLOAD_THREADS = 16
_upload_threads = ThreadPoolExecutor(max_workers=UPLOAD_THREADS, thread_name_prefix="backup-upload")
# Django's SecurityMiddleware adds these to every response; this route bypasses it.
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


class ClientDisconnected(Exception):
    """The client went away before the whole body arrived."""


_END = b""
_DISCONNECTED = object()


class BodyQueueReader:
    """``read(n)`` for the storage thread over chunks the event loop puts in a bounded queue.

    Returns at most ``n`` bytes (S3's ``readinto`` needs that), ``b""`` at the end of the body,
    and raises ``ClientDisconnected`` when the event loop reports a disconnect or gives up.
    """

    def __init__(self, *, on_space: Callable[[], object]) -> None:
        self.chunks: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_DEPTH)
        self.aborted = threading.Event()
        self._on_space = on_space
        self._chunk = b""
        self._offset = 0
        self._ended = False

    def read(self, size: int) -> bytes:
        if self._offset >= len(self._chunk):
            if self._ended:
                return b""
            item = self._next()
            if item is _DISCONNECTED:
                raise ClientDisconnected
            if item == _END:
                self._ended = True
                return b""
            self._chunk, self._offset = item, 0
        if self._offset == 0 and len(self._chunk) <= size:  # the usual case: a whole chunk, no copy
            self._offset = len(self._chunk)
            return self._chunk
        data = self._chunk[self._offset : self._offset + size]
        self._offset += len(data)
        return data

    def _next(self) -> Any:
        while True:
            try:
                item = self.chunks.get(timeout=0.5)
            except queue.Empty:
                if self.aborted.is_set():
                    return _DISCONNECTED
                continue
            self._on_space()
            return item


class BackupUploadRoute:
    """ASGI app: ``PUT /api/v1/backup`` is handled here, everything else by ``inner``."""

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "PUT" and scope["path"].rstrip("/") == BACKUP_PATH:
            await backup_put(scope, receive, send)
        else:
            await self.inner(scope, receive, send)


async def backup_put(scope: Scope, receive: Receive, send: Send) -> None:
    headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
    request_id = request_id_from_header(headers.get("x-request-id"))
    token = request_id_var.set(request_id)
    try:
        try:
            user, backup_headers, content_length, room = await _in_thread(_admit, headers)
        except Exception as exc:  # refused before a byte of the body was read
            await _send_error(send, exc, request_id)
            return
        try:
            caps = [cap for cap in (content_length, room) if cap is not None]
            backup = await _stream(
                receive, user=user, headers=backup_headers, content_length=content_length, cap=min(caps, default=None)
            )
        except ClientDisconnected:
            logger.info("storage: backup upload of %s abandoned by the client; nothing kept", user.pk)
            return
        except Exception as exc:
            await _send_error(send, exc, request_id)
            return
        from .apis.backups import BackupMetadataSerializer  # the door's output shape, shared with GET/history

        body = JSONRenderer().render({"ok": True, **BackupMetadataSerializer(backup).data})
        await _send(send, 201, body, request_id)
    finally:
        request_id_var.reset(token)


async def _in_thread(function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Run ``function`` on the upload pool with this request's context (its request id for logs)."""
    call = functools.partial(contextvars.copy_context().run, function, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_upload_threads, call)


def _admit(headers: dict[str, str]) -> tuple[Any, BackupHeaders, int | None, int | None]:
    """Authenticate, throttle, parse the headers and check tier and quota; no body is read here."""
    try:
        authenticator = AccessTokenAuthentication()
        raw_header = headers.get("authorization")
        raw_token = authenticator.get_raw_token(raw_header.encode("latin-1")) if raw_header else None
        if raw_token is None:
            raise exceptions.NotAuthenticated()
        user = authenticator.get_user(authenticator.get_validated_token(raw_token))
        throttle = TierRateThrottle()
        if not throttle.allow_request(SimpleNamespace(user=user), None):  # type: ignore[arg-type]
            raise exceptions.Throttled(wait=throttle.wait())
        backup_headers = backup_headers_parse(
            version=headers.get("x-backup-version"),
            timestamp=headers.get("x-backup-timestamp"),
            checksum=headers.get("x-backup-checksum"),
        )
        raw_length = headers.get("content-length", "")
        content_length = int(raw_length) if raw_length.isdigit() else None
        backup_body_room_check(user=user, declared_size=content_length)
        return user, backup_headers, content_length, backup_room(user=user)
    finally:
        connections.close_all()  # this worker thread's connections go back to the pool


def _store(*, user: Any, headers: BackupHeaders, reader: BodyQueueReader, content_length: int | None) -> Backup:
    try:
        return backup_upload(user=user, headers=headers, read=reader.read, content_length=content_length)
    finally:
        connections.close_all()


async def _stream(
    receive: Receive, *, user: Any, headers: BackupHeaders, content_length: int | None, cap: int | None
) -> Backup:
    """Pump the body into the storage thread; return the completed backup or raise its error.

    ``cap`` (the declared length or the quota left, whichever is smaller) stops the reading as soon
    as the count passes it; the storage thread, which enforces the same cap, then fails the upload
    with the precise error (413 over quota, 400 longer than declared).
    """
    loop = asyncio.get_running_loop()
    space = asyncio.Event()
    reader = BodyQueueReader(on_space=lambda: loop.call_soon_threadsafe(space.set))
    worker = asyncio.ensure_future(
        _in_thread(_store, user=user, headers=headers, reader=reader, content_length=content_length)
    )
    worker.add_done_callback(lambda _: space.set())

    async def put(item: Any) -> bool:
        """Queue ``item`` for the storage thread; False once the thread has stopped reading."""
        while not worker.done():
            try:
                reader.chunks.put_nowait(item)
                return True
            except queue.Full:
                space.clear()
                if reader.chunks.full() and not worker.done():
                    await space.wait()
        return False

    batch = bytearray()
    received = 0
    try:
        while not worker.done():
            message = await receive()
            if message["type"] == "http.disconnect":
                await put(_DISCONNECTED)
                break
            chunk = message.get("body", b"")
            batch += chunk
            received += len(chunk)
            more = message.get("more_body", False)
            if cap is not None and received > cap:
                await put(bytes(batch))  # enough for the storage thread to see the overflow
                reader.aborted.set()  # and never wait for more
                break
            if len(batch) >= BATCH_BYTES or not more:
                if batch and not await put(bytes(batch)):
                    break
                batch = bytearray()
            if not more:
                await put(_END)
                break
    except BaseException:
        # Cancelled by the server (shutdown) or receive failed: the storage thread must not wait
        # for chunks that will never come; it fails the backup and deletes its bytes.
        reader.aborted.set()
        raise
    return await worker


async def _send_error(send: Send, exc: Exception, request_id: str) -> None:
    if isinstance(exc, ApplicationError | exceptions.APIException):
        response = api_exception_handler(exc, {"view": None})
        extra = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in response.items()]
        extra = [(name, value) for name, value in extra if name not in (b"content-type", b"vary", b"allow")]
        await _send(send, response.status_code, JSONRenderer().render(response.data), request_id, extra)
        return
    logger.exception("storage: backup upload failed")
    body = JSONRenderer().render(error_body(CoreErrorCode.INTERNAL_ERROR, "An internal error occurred."))
    await _send(send, 500, body, request_id)


async def _send(
    send: Send, status: int, body: bytes, request_id: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", request_id.encode("latin-1")),
        *SECURITY_HEADERS,
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
