"""A record's blob downloaded over ASGI: a small blob on local disk is read on the server's loop, a
large one (and S3) in the request's thread; the answers are the same either way."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async

from apps.accounts.tokens import tokens_issue
from apps.core.testing.asgi_request import asgi_get_response, thread_trips_counted
from apps.storage.blob_store import LOOP_READ_MAX_BYTES
from apps.storage.records import record_create

from .conftest import sha256_hex, stored_files

pytestmark = pytest.mark.django_db(transaction=True)


async def _stored(user, blob: bytes) -> str:
    record = await sync_to_async(record_create)(user=user, table="notes", blob=blob, checksum=sha256_hex(blob))
    return f"/api/v1/storage/records/{record.id}"


@pytest.fixture
async def download(loop_asgi_app, pro_user):
    pair = await sync_to_async(tokens_issue)(user=pro_user)
    headers = {"Authorization": f"Bearer {pair.access_token}", "Accept": "application/octet-stream"}

    async def get(route: str) -> tuple[int, dict[str, str], bytes]:
        return await asgi_get_response(loop_asgi_app, route, headers=headers)

    return get


async def test_a_small_blob_on_local_disk_is_read_on_the_loop(download, pro_user, blob_dir, monkeypatch):
    # given a stored record and a warm server
    blob = b"ciphertext-small" * 100
    route = await _stored(pro_user, blob)
    assert (await download(route))[0] == 200
    trips = thread_trips_counted(monkeypatch)

    # when the client downloads it
    status, headers, body = await download(route)

    # then it gets its bytes and checksum, and the request went to no thread (the blob was read on the loop)
    assert (status, body, headers["x-checksum"]) == (200, blob, sha256_hex(blob))
    assert trips == []


async def test_a_blob_larger_than_the_loop_read_is_read_in_the_thread(download, pro_user, blob_dir, monkeypatch):
    # given a record one byte over what the loop reads itself
    blob = b"x" * (LOOP_READ_MAX_BYTES + 1)
    route = await _stored(pro_user, blob)
    trips = thread_trips_counted(monkeypatch)

    # when the client downloads it
    status, headers, body = await download(route)

    # then it gets every byte, read in the thread
    assert (status, body, headers["x-checksum"]) == (200, blob, sha256_hex(blob))
    assert "blob_read_bytes" in trips


async def test_a_small_blob_vanished_from_disk_is_a_clear_404_on_the_loop(download, pro_user, blob_dir):
    # given a record whose bytes were lost behind the database's back
    route = await _stored(pro_user, b"ciphertext-lost")
    for path in stored_files(blob_dir):
        path.unlink()

    # when it is downloaded
    status, _headers, body = await download(route)

    # then the answer is the thread's: a stable code, no 500
    assert status == 404
    assert json.loads(body)["code"] == "blob_missing"
