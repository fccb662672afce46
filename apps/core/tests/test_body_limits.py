"""Body caps hold before a byte of the body is read: through the project's real ASGI application."""

from __future__ import annotations

import asyncio
import json

import pytest

from apps.accounts.tokens import tokens_issue

pytestmark = pytest.mark.django_db(transaction=True)

MIB = 1024 * 1024


def _scope(method: str, path: str, headers: dict[str, str]) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(name.lower().encode(), value.encode()) for name, value in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


class ScriptedClient:
    """Feeds body chunks on demand and counts how many the server pulled."""

    def __init__(self, chunks: int, chunk_size: int = 256 * 1024) -> None:
        self.total_chunks = chunks
        self.chunk = b"x" * chunk_size
        self.pulled = 0
        self.sent: list[dict] = []

    async def receive(self) -> dict:
        if self.pulled >= self.total_chunks:
            await asyncio.sleep(3600)  # a silent client: the server must not wait for it
        self.pulled += 1
        return {"type": "http.request", "body": self.chunk, "more_body": self.pulled < self.total_chunks}

    async def send(self, message: dict) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int | None:
        return next((m["status"] for m in self.sent if m["type"] == "http.response.start"), None)

    def json(self) -> dict:
        return json.loads(b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body"))


async def _call(scope: dict, client: ScriptedClient) -> ScriptedClient:
    from adiuva.asgi import application

    await asyncio.wait_for(application(scope, client.receive, client.send), timeout=30)
    return client


async def test_anonymous_huge_backup_upload_is_refused_before_its_body_is_read():
    # given an unauthenticated PUT backup that declares 400 MB
    client = ScriptedClient(chunks=1600)
    scope = _scope("PUT", "/api/v1/backup", {"content-length": str(400 * 1000 * 1000)})

    # when it reaches the server
    await _call(scope, client)

    # then the backup route refuses it (JSON 401) before one body chunk is pulled
    # (nothing buffered, nothing on disk)
    assert client.status == 401
    assert client.json()["code"] == "not_authenticated"
    assert client.pulled == 0


async def test_chunked_body_is_cut_off_once_it_passes_the_cap():
    # given an anonymous chunked (no Content-Length) 400 MB body to a JSON route
    client = ScriptedClient(chunks=1600)

    # when it is sent
    await _call(_scope("POST", "/api/v1/auth/login", {"content-type": "application/json"}), client)

    # then the server answers 413 after reading just past the 1 MiB cap, and stops pulling
    assert client.status == 413
    assert client.pulled == MIB // len(client.chunk) + 1
    assert [m["type"] for m in client.sent] == ["http.response.start", "http.response.body"]


async def test_anonymous_chunked_backup_is_refused_before_its_body_is_read():
    client = ScriptedClient(chunks=1600)

    await _call(_scope("PUT", "/api/v1/backup", {"content-type": "application/octet-stream"}), client)

    assert client.status == 401
    assert client.pulled == 0


async def test_forged_bearer_gets_no_byte_of_a_backup_read():
    client = ScriptedClient(chunks=1600)
    headers = {"content-length": str(400 * 1000 * 1000), "authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.e30.forged"}

    await _call(_scope("PUT", "/api/v1/backup", headers), client)

    assert client.status == 401
    assert client.pulled == 0


async def test_records_route_accepts_a_base64_record_larger_than_the_json_cap(settings):
    # given a 2 MiB body (over the 1 MiB default, under the records cap) without credentials
    client = ScriptedClient(chunks=8)

    await _call(_scope("POST", "/api/v1/storage/records", {"content-length": str(2 * MIB)}), client)

    # then the body reaches Django, which answers 401 (not 413)
    assert client.status == 401
    assert client.pulled == 8


async def test_signed_in_backup_upload_is_left_to_the_route_own_cap(make_user):
    # given a free user's valid token and a 2 MiB chunked backup body (over the generic 1 MiB cap)
    user = await asyncio.to_thread(make_user, "bodycap@example.com")
    token = (await asyncio.to_thread(tokens_issue, user=user)).access_token
    client = ScriptedClient(chunks=8)
    headers = {
        "authorization": f"Bearer {token}",
        "content-type": "application/octet-stream",
        "x-backup-version": "1",
        "x-backup-timestamp": "1700000000",
        "x-backup-checksum": "0" * 64,
    }

    # when it is uploaded
    await _call(_scope("PUT", "/api/v1/backup", headers), client)

    # then the generic cap did not answer: the backup route did (free tier: no backups)
    assert client.status == 403
    assert client.json()["code"] != "payload_too_large"
