"""Backups through the real ASGI application: a streamed upload, a streamed download, a client that hangs up."""

from __future__ import annotations

import asyncio
import os

import pytest
from asgiref.sync import sync_to_async
from django.db import connection

from apps.accounts.tokens import tokens_issue
from apps.storage.models import Backup

from .conftest import sha256_hex, stored_files

pytestmark = pytest.mark.django_db(transaction=True)

CHUNK = 256 * 1024


def _scope(method: str, token: str, headers: dict[str, str]) -> dict:
    raw = [(b"authorization", f"Bearer {token}".encode())]
    raw += [(name.lower().encode(), value.encode()) for name, value in headers.items()]
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": "/api/v1/backup",
        "raw_path": b"/api/v1/backup",
        "query_string": b"",
        "headers": raw,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def _call(scope: dict, messages: list[dict]) -> list[dict]:
    """Run the project's ASGI app with scripted receive messages; return everything it sent."""
    from adiuva.asgi import application

    inbox: asyncio.Queue = asyncio.Queue()
    for message in messages:
        inbox.put_nowait(message)
    sent: list[dict] = []

    async def receive() -> dict:
        if inbox.empty():
            await asyncio.sleep(3600)  # the client stays silent (Django waits for a disconnect)
        return await inbox.get()

    async def send(message: dict) -> None:
        sent.append(message)

    await asyncio.wait_for(application(scope, receive, send), timeout=30)
    return sent


def _body_messages(payload: bytes) -> list[dict]:
    chunks = [payload[i : i + CHUNK] for i in range(0, len(payload), CHUNK)]
    return [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]


def _backup_headers(payload: bytes, *, version: int, length: bool = True) -> dict[str, str]:
    headers = {
        "content-type": "application/octet-stream",
        "x-backup-version": str(version),
        "x-backup-timestamp": "1700000000",
        "x-backup-checksum": sha256_hex(payload),
    }
    if length:
        headers["content-length"] = str(len(payload))
    return headers


def _backup_versions() -> list[tuple[int, str]]:
    try:
        return sorted(Backup.objects.values_list("version", "status"))
    finally:
        connection.close()  # this worker thread's connection would otherwise outlive the test database


@pytest.fixture
def pro_token(make_user) -> str:
    return tokens_issue(user=make_user("asgi@example.com", tier="pro")).access_token


async def test_chunked_upload_and_streamed_download_through_asgi(pro_token, blob_dir):
    # given a 2 MiB backup sent in 256 KiB chunks, without Content-Length (chunked transfer)
    payload = os.urandom(2 * 1024 * 1024)
    put = await _call(
        _scope("PUT", pro_token, _backup_headers(payload, version=3, length=False)), _body_messages(payload)
    )
    assert put[0]["status"] == 201

    # when it is downloaded
    got = await _call(_scope("GET", pro_token, {}), [{"type": "http.request", "body": b"", "more_body": False}])

    # then it arrives in several body messages (streamed, not one buffered blob), byte for byte
    assert got[0]["status"] == 200
    bodies = [m["body"] for m in got[1:] if m["type"] == "http.response.body" and m.get("body")]
    assert len(bodies) >= 2
    assert b"".join(bodies) == payload


async def test_client_disconnect_mid_upload_stores_nothing_and_keeps_latest(pro_token, blob_dir):
    # given a complete backup
    first = b"first backup"
    await _call(_scope("PUT", pro_token, _backup_headers(first, version=1)), _body_messages(first))

    # when the next upload's client hangs up after the first chunk
    payload = os.urandom(1024 * 1024)
    messages = [_body_messages(payload)[0], {"type": "http.disconnect"}]
    sent = await _call(_scope("PUT", pro_token, _backup_headers(payload, version=2)), messages)

    # then no response is owed, nothing partial is visible and the first backup is still latest
    # (the attempt stays in the table as failed, without bytes; history never lists it)
    assert sent == []
    versions = await sync_to_async(_backup_versions)()
    assert versions == [(1, "complete"), (2, "failed")]
    assert len(stored_files(blob_dir)) == 1
    got = await _call(_scope("GET", pro_token, {}), [{"type": "http.request", "body": b"", "more_body": False}])
    assert b"".join(m.get("body", b"") for m in got[1:]) == first
