"""PUT /api/v1/backup through the pure-ASGI route in front of Django (``apps.storage.backup_stream``).

The route is driven as the ASGI server drives it: a scope, a ``receive`` handing out body
messages (counted, so "refused before any byte is read" is checkable) and a ``send`` that
collects the response. The last test goes through a real uvicorn serving ``adiuva.asgi``.
"""

from __future__ import annotations

import asyncio
import json
import os

import httpx
import pytest
from rest_framework.test import APIClient

from apps.accounts.tokens import tokens_issue
from apps.billing.tiers import GIB
from apps.storage.backup_stream import BackupUploadRoute
from apps.storage.models import Backup, BackupStatus
from apps.storage.selectors import backup_latest

from .conftest import each_wrong_checksum, sha256_hex, stored_files

# The route's storage thread has its own database connection: rows must be committed.
pytestmark = pytest.mark.django_db(transaction=True)

CHUNK = 64 * 1024


class Recorded:
    def __init__(self) -> None:
        self.messages: list[dict] = []
        self.body_reads = 0

    @property
    def status(self) -> int | None:
        return next((m["status"] for m in self.messages if m["type"] == "http.response.start"), None)

    @property
    def headers(self) -> dict[str, str]:
        start = next(m for m in self.messages if m["type"] == "http.response.start")
        return {k.decode(): v.decode() for k, v in start["headers"]}

    def json(self) -> dict:
        return json.loads(b"".join(m.get("body", b"") for m in self.messages if m["type"] == "http.response.body"))


async def _django_fallback(scope, receive, send):
    await send({"type": "http.response.start", "status": 299, "headers": []})
    await send({"type": "http.response.body", "body": b"django"})


def drive(
    *,
    token: str | None,
    chunks: list[bytes],
    checksum: str,
    content_length: int | None,
    disconnect_after: int | None = None,
    path: str = "/api/v1/backup",
    method: str = "PUT",
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> Recorded:
    """Run one request through the route; ``disconnect_after`` chunks, the client goes away."""
    recorded = Recorded()
    headers = [
        (b"x-backup-version", b"3"),
        (b"x-backup-timestamp", b"1700000000"),
        (b"x-backup-checksum", checksum.encode()),
        (b"x-request-id", b"req-backup-1"),
        *(extra_headers or []),
    ]
    if token:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    if content_length is not None:
        headers.append((b"content-length", str(content_length).encode()))
    scope = {"type": "http", "method": method, "path": path, "headers": headers, "query_string": b""}

    async def receive():
        index = recorded.body_reads
        recorded.body_reads += 1
        if disconnect_after is not None and index >= disconnect_after:
            return {"type": "http.disconnect"}
        if index >= len(chunks):
            await asyncio.sleep(3600)  # a well-behaved server never asks past the last message
        return {"type": "http.request", "body": chunks[index], "more_body": index < len(chunks) - 1}

    async def send(message):
        recorded.messages.append(message)

    asyncio.run(BackupUploadRoute(_django_fallback)(scope, receive, send))
    return recorded


def split(data: bytes) -> list[bytes]:
    return [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)] or [b""]


@pytest.fixture
def token(pro_user) -> str:
    return tokens_issue(user=pro_user).access_token


def test_a_streamed_backup_becomes_latest_with_the_views_response(pro_user, token, blob_dir):
    # given a 2.5 MiB body sent in 64 KiB messages
    data = os.urandom(2 * 1024 * 1024 + 512 * 1024 + 7)

    # when it is PUT through the route
    response = drive(token=token, chunks=split(data), checksum=sha256_hex(data), content_length=len(data))

    # then it is stored whole, is the latest, and the answer has the Django view's shape and headers
    assert response.status == 201
    body = response.json()
    assert body["ok"] is True
    assert {"id", "version", "timestamp", "checksum", "size_bytes", "created_at"} <= set(body)
    assert body["size_bytes"] == len(data)
    assert response.headers["x-request-id"] == "req-backup-1"
    assert response.headers["content-type"] == "application/json"
    latest = backup_latest(user=pro_user)
    assert str(latest.id) == body["id"]
    assert latest.version == 3
    [stored] = stored_files(blob_dir)
    assert stored.read_bytes() == data


def test_other_requests_go_to_django(token):
    response = drive(token=token, chunks=[b"x"], checksum="0" * 64, content_length=1, method="GET")

    assert response.status == 299


@pytest.mark.parametrize("token_value", [None, "not-a-jwt"])
def test_an_unauthenticated_upload_is_refused_before_any_byte_is_read(token_value, blob_dir):
    response = drive(token=token_value, chunks=[b"secret"], checksum=sha256_hex(b"secret"), content_length=6)

    assert response.status == 401
    assert response.json()["code"] in {"not_authenticated", "token_invalid"}
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.body_reads == 0
    assert Backup.objects.count() == 0


def test_the_free_tier_is_refused_before_any_byte_is_read(make_user, blob_dir):
    free = make_user("free@example.com")
    token = tokens_issue(user=free).access_token

    response = drive(token=token, chunks=[b"data"], checksum=sha256_hex(b"data"), content_length=4)

    assert response.status == 403
    assert response.json()["code"] == "feature_not_available"
    assert response.body_reads == 0


def test_malformed_headers_are_400_before_any_byte_is_read(token, blob_dir):
    response = drive(token=token, chunks=[b"data"], checksum="abc", content_length=4)

    assert response.status == 400
    assert response.json()["code"] in {"invalid_backup_header", "invalid_checksum"}
    assert response.body_reads == 0


def _fill_quota(user, *, leaving: int) -> Backup:
    return Backup.objects.create(
        user=user,
        version=1,
        timestamp=1,
        checksum="0" * 64,
        size_bytes=5 * GIB - leaving,
        blob_key="backups/x/old",
        status=BackupStatus.COMPLETE,
    )


def test_a_declared_length_over_the_remaining_quota_is_413_before_any_byte_is_read(pro_user, token, blob_dir):
    # given 100 bytes of backup quota left
    _fill_quota(pro_user, leaving=100)

    # when 101 bytes are announced
    response = drive(token=token, chunks=[b"x" * 101], checksum=sha256_hex(b"x" * 101), content_length=101)

    # then it is refused at once, nothing read, nothing reserved
    assert response.status == 413
    body = response.json()
    assert body["code"] == "quota_exceeded"
    assert body["feature"] == "backup_gb"
    assert response.body_reads == 0
    assert Backup.objects.filter(user=pro_user).count() == 1


def test_a_streamed_body_over_the_quota_stops_at_the_quota(pro_user, token, blob_dir):
    # given 3 MiB of quota left and a 64 MiB body without Content-Length
    old = _fill_quota(pro_user, leaving=3 * 1024 * 1024)
    chunks = [b"z" * CHUNK] * 1024

    # when it is streamed
    response = drive(token=token, chunks=chunks, checksum="0" * 64, content_length=None)

    # then 413 as soon as the count passes the quota, long before the end of the body
    assert response.status == 413
    assert response.json()["code"] == "quota_exceeded"
    assert response.body_reads < 200
    assert stored_files(blob_dir) == []
    assert backup_latest(user=pro_user).id == old.id


def test_a_client_disconnecting_halfway_leaves_nothing(pro_user, token, blob_dir):
    # given a previous backup and a new 4 MiB upload
    first = b"first backup"
    assert drive(token=token, chunks=[first], checksum=sha256_hex(first), content_length=len(first)).status == 201
    data = os.urandom(4 * 1024 * 1024)
    chunks = split(data)

    # when the client goes away at 50 %
    response = drive(
        token=token,
        chunks=chunks,
        checksum=sha256_hex(data),
        content_length=len(data),
        disconnect_after=len(chunks) // 2,
    )

    # then no response is sent, the reserved row is failed, its bytes deleted, the previous latest kept
    assert response.status is None
    attempt = Backup.objects.filter(user=pro_user).order_by("-created_at").first()
    assert attempt.status == BackupStatus.FAILED
    assert attempt.size_bytes == 0
    assert [path.read_bytes() for path in stored_files(blob_dir)] == [first]
    assert backup_latest(user=pro_user).version == 3
    assert backup_latest(user=pro_user).size_bytes == len(first)


def test_a_body_longer_than_its_declared_length_is_refused_and_discarded(pro_user, token, blob_dir):
    data = b"y" * (3 * CHUNK)

    response = drive(token=token, chunks=split(data), checksum=sha256_hex(data), content_length=len(data) - 10)

    assert response.status == 400
    assert response.json()["code"] == "size_mismatch"
    assert stored_files(blob_dir) == []
    assert backup_latest(user=pro_user) is None


@each_wrong_checksum
def test_a_checksum_mismatch_keeps_the_previous_latest(pro_user, token, blob_dir, wrong_checksum):
    first = b"good"
    drive(token=token, chunks=[first], checksum=sha256_hex(first), content_length=len(first))

    response = drive(token=token, chunks=[b"evil"], checksum=wrong_checksum(b"evil"), content_length=4)

    assert response.status == 400
    assert response.json()["code"] == "checksum_mismatch"
    assert [path.read_bytes() for path in stored_files(blob_dir)] == [first]


def test_an_upload_through_uvicorn_streams_a_chunked_body(pro_user, token, blob_dir, settings):
    # given the real ASGI application under uvicorn
    from apps.devices.tests.conftest import ServerThread

    server = ServerThread()
    server.start()
    try:
        data = os.urandom(3 * 1024 * 1024)

        def body():
            yield from split(data)  # a generator: chunked transfer encoding, no Content-Length

        # when a client streams a backup
        response = httpx.put(
            f"http://127.0.0.1:{server.port}/api/v1/backup",
            content=body(),
            headers={
                "Authorization": f"Bearer {token}",
                "X-Backup-Version": "7",
                "X-Backup-Timestamp": "1",
                "X-Backup-Checksum": sha256_hex(data),
            },
            timeout=30,
        )
    finally:
        server.stop()

    # then it is the latest backup, byte for byte
    assert response.status_code == 201, response.text
    assert response.json()["size_bytes"] == len(data)
    assert response.headers["x-request-id"]
    assert backup_latest(user=pro_user).version == 7
    [stored] = stored_files(blob_dir)
    assert stored.read_bytes() == data


def test_an_upload_over_the_request_budget_is_429_like_every_throttled_endpoint(pro_user, token, blob_dir, settings):
    # given a user who spent the tier's request budget on other endpoints
    settings.BILLING_RATE_LIMIT_SCALE = 1
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    while (throttled := client.get("/api/v1/auth/me")).status_code != 429:
        assert throttled.status_code == 200

    # when the user uploads a backup
    response = drive(token=token, chunks=[b"data"], checksum=sha256_hex(b"data"), content_length=4)

    # then the same 429 as the other endpoints, before any byte is read and with nothing stored
    assert response.status == 429
    assert set(response.json()) == set(throttled.json())
    assert response.json()["code"] == throttled.json()["code"] == "rate_limited"
    assert response.json()["request_id"] == "req-backup-1"
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert response.body_reads == 0
    assert Backup.objects.count() == 0
