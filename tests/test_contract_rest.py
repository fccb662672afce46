"""Wire contract with the desktop client: the REST shapes the earlier backend sent, pinned.

Each test names an endpoint of the earlier backend and asserts the keys and JSON types the client
parses (new keys may be added beside them; none may disappear or change type). Lists it returned
as JSON arrays stay arrays.
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from rest_framework.test import APIClient

from apps.accounts.tokens import tokens_issue
from apps.assistant.testing.scripted_openai import ScriptedOpenAI, text
from apps.storage.models import VECTOR_DIMENSIONS

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery-staple-42"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def assert_shape(body: dict, shape: dict[str, type | tuple[type, ...]]) -> None:
    """Every key of the earlier backend is present with its JSON type."""
    for key, kind in shape.items():
        assert key in body, f"missing {key!r} in {body}"
        assert isinstance(body[key], kind), f"{key!r} is {type(body[key]).__name__}, expected {kind}"


TOKENS = {"access_token": str, "refresh_token": str, "expires_at": int}
ERROR = {"code": str, "message": str, "detail": str}


@pytest.fixture
def pro_client(make_user) -> APIClient:
    client = APIClient()
    user = make_user("contract@example.com", tier="pro")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens_issue(user=user).access_token}")
    return client


def test_auth_register_login_refresh_return_tokens(api_client):
    registered = api_client.post("/api/v1/auth/register", {"email": "c@example.com", "password": PASSWORD})
    logged_in = api_client.post("/api/v1/auth/login", {"email": "c@example.com", "password": PASSWORD})
    refreshed = api_client.post("/api/v1/auth/refresh", {"refresh_token": logged_in.json()["refresh_token"]})

    assert registered.status_code == 201
    assert logged_in.status_code == 200
    assert refreshed.status_code == 200
    for response in (registered, logged_in, refreshed):
        assert_shape(response.json(), TOKENS)


def test_auth_me_returns_the_user_profile(pro_client):
    body = pro_client.get("/api/v1/auth/me").json()

    assert_shape(body, {"id": str, "email": str, "tier": str})
    assert body["tier"] == "pro"


def test_errors_are_json_with_code_message_and_detail(api_client):
    response = api_client.get("/api/v1/auth/me")

    assert response.status_code == 401
    assert_shape(response.json(), ERROR)


def test_storage_record_create_list_get_put_delete(pro_client):
    blob = b"ciphertext"
    created = pro_client.post("/api/v1/storage/records", {"table": "notes", "blob": b64(blob), "checksum": sha(blob)})
    listed = pro_client.get("/api/v1/storage/records", {"table": "notes", "page": 1, "limit": 10})
    record_id = created.json()["id"]
    got = pro_client.get(f"/api/v1/storage/records/{record_id}")
    put = pro_client.put(f"/api/v1/storage/records/{record_id}", {"blob": b64(b"v2"), "checksum": sha(b"v2")})
    deleted = pro_client.delete(f"/api/v1/storage/records/{record_id}")

    assert created.status_code == 201
    assert_shape(created.json(), {"id": str, "created_at": int})
    # RecordMeta[]: a bare array, never an envelope
    assert isinstance(listed.json(), list)
    assert_shape(listed.json()[0], {"id": str, "table": str, "checksum": str, "created_at": int, "updated_at": int})
    assert got.content == blob
    assert got["X-Checksum"] == sha(blob)
    assert put.json() == {"ok": True}
    assert deleted.json() == {"ok": True}


def test_storage_records_page_past_the_end_is_an_empty_array(pro_client):
    blob = b"ciphertext"
    pro_client.post("/api/v1/storage/records", {"table": "notes", "blob": b64(blob), "checksum": sha(blob)})

    past_end = pro_client.get("/api/v1/storage/records", {"page": 5, "limit": 10})
    empty_table = pro_client.get("/api/v1/storage/records", {"table": "nothing-here", "page": 2})

    assert (past_end.status_code, past_end.json()) == (200, [])
    assert past_end["X-Total-Count"] == "1"
    assert (empty_table.status_code, empty_table.json()) == (200, [])


def test_storage_vectors_upsert_search_delete(pro_client):
    vector = [0.1] * VECTOR_DIMENSIONS
    item = {"id": "v1", "blob": b64(b"vec"), "checksum": sha(b"vec"), "vector": vector}

    upserted = pro_client.post("/api/v1/storage/vectors/upsert", {"vectors": [item]}, format="json")
    searched = pro_client.post("/api/v1/storage/vectors/search", {"query_blob": b64(b"vec"), "top_k": 5}, format="json")
    deleted = pro_client.delete("/api/v1/storage/vectors", {"ids": ["v1"]}, format="json")

    assert upserted.json() == {"upserted": 1}
    assert_shape(searched.json(), {"results": list})
    assert_shape(searched.json()["results"][0], {"id": str, "score": float, "blob": str})
    assert deleted.json()["ok"] is True


def test_backup_put_get_history_delete(pro_client, settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "blobs": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path)}},
    }
    payload = b"backup-bytes"
    headers = {
        "HTTP_X_BACKUP_VERSION": "1",
        "HTTP_X_BACKUP_TIMESTAMP": "1700000000",
        "HTTP_X_BACKUP_CHECKSUM": sha(payload),
    }

    put = pro_client.generic("PUT", "/api/v1/backup", payload, content_type="application/octet-stream", **headers)
    latest = pro_client.get("/api/v1/backup", HTTP_ACCEPT="application/octet-stream")
    history = pro_client.get("/api/v1/backup/history")
    deleted = pro_client.delete(f"/api/v1/backup/{history.json()[0]['id']}")

    assert put.status_code == 201
    assert put.json()["ok"] is True
    assert b"".join(latest.streaming_content) == payload
    # BackupMetadata[]: a bare array
    assert isinstance(history.json(), list)
    shape = {"id": str, "version": int, "timestamp": int, "checksum": str, "size_bytes": int, "chunk_count": int}
    assert_shape(history.json()[0], shape)
    assert history.json()[0]["chunk_count"] == 1
    assert deleted.json() == {"ok": True}


@pytest.mark.django_db(transaction=True)
def test_chat_returns_the_response_text(pro_client, settings):
    with ScriptedOpenAI() as llm:
        settings.OPENAI_API_KEY = "sk-scripted"
        settings.OPENAI_BASE_URL = llm.base_url
        llm.script(text("Hello from the home agent."))

        response = pro_client.post("/api/v1/chat", {"message": "hi", "context": {}}, format="json")

    assert response.status_code == 200
    assert_shape(response.json(), {"response": str})
    assert "Hello from the home agent." in response.json()["response"]


def test_health_returns_status_and_version(api_client):
    assert_shape(api_client.get("/api/v1/health").json(), {"status": str, "version": str})


def test_cors_allows_the_desktop_app_and_localhost_origins(api_client):
    for origin in ("app://adiuva", "http://localhost:5173"):
        preflight = api_client.options(
            "/api/v1/auth/login",
            HTTP_ORIGIN=origin,
            HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
            HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization,content-type",
        )
        assert preflight["Access-Control-Allow-Origin"] == origin
    listed = api_client.get("/api/v1/health", HTTP_ORIGIN="http://localhost:3000")
    assert "X-Total-Count" in listed["Access-Control-Expose-Headers"]


def test_cors_refuses_other_origins(api_client):
    response = api_client.get("/api/v1/health", HTTP_ORIGIN="https://evil.example")

    assert "Access-Control-Allow-Origin" not in response


def test_devices_list_and_forget(pro_client):
    from apps.accounts.models import User
    from apps.devices.models import Device

    Device.objects.create(user=User.objects.get(email="contract@example.com"), device_id="laptop", name="Laptop")

    listed = pro_client.get("/api/v1/devices")
    forgotten = pro_client.delete("/api/v1/devices/laptop")
    again = pro_client.delete("/api/v1/devices/laptop")

    assert isinstance(listed.json(), list)
    device = listed.json()[0]
    assert_shape(device, {"device_id": str, "name": str, "online": bool, "last_seen_at": str, "bound_agents": list})
    assert forgotten.status_code == 204
    assert again.status_code == 404
    assert_shape(again.json(), ERROR)
