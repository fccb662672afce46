"""Where the schema and the code disagreed, each side now says the same: what the schema allows the code
accepts, and what the code refuses the schema forbids (found by schemathesis' acceptance checks)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from rest_framework.test import APIClient

from apps.accounts.tokens import tokens_issue
from apps.storage.tests.conftest import b64

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(make_user) -> APIClient:
    user = make_user("schema-truth@example.com", tier="power", email_verified=True)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens_issue(user=user).access_token}")
    return client


@pytest.fixture
def openapi(client) -> dict[str, Any]:
    return client.get("/api/v1/schema?format=json").json()


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Follow ``$ref`` (and a one-element ``allOf``, how extracted enums are referenced)."""
    while "$ref" in node or len(node.get("allOf", [])) == 1:
        if "allOf" in node:
            node = {**node["allOf"][0], **{k: v for k, v in node.items() if k != "allOf"}}
            continue
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def _body_property(schema: dict[str, Any], path: str, method: str, name: str) -> dict[str, Any]:
    body = schema["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
    return _resolve(schema, _resolve(schema, body)["properties"][name])


def _parameter(schema: dict[str, Any], path: str, method: str, name: str) -> dict[str, Any]:
    return next(p for p in schema["paths"][path][method]["parameters"] if p["name"] == name)["schema"]


@pytest.mark.parametrize("path", ["/api/v1/agents/local", "/api/v1/agents/cloud"])
def test_agent_data_types_may_not_be_empty_in_schema_or_code(client, openapi, path):
    assert _body_property(openapi, path, "post", "data_types")["minItems"] == 1

    response = client.post(path, {"name": "x", "data_types": []}, format="json")

    assert response.status_code == 400
    assert "data_types" in response.json()["fields"]


def test_the_time_zone_schema_lists_the_names_the_code_accepts(client, openapi):
    names = _body_property(openapi, "/api/v1/auth/me", "patch", "time_zone")["enum"]
    assert "Europe/Berlin" in names
    assert "0" not in names

    assert client.patch("/api/v1/auth/me", {"time_zone": names[-1]}, format="json").status_code == 200
    assert client.patch("/api/v1/auth/me", {"time_zone": "0"}, format="json").status_code == 400


def test_runs_limit_bounds_are_in_the_schema(client, openapi):
    limit = _parameter(openapi, "/api/v1/agents/runs", "get", "limit")
    assert (limit["minimum"], limit["maximum"]) == (1, 200)
    assert _parameter(openapi, "/api/v1/agents/runs", "get", "page")["minimum"] == 1

    assert client.get("/api/v1/agents/runs", {"limit": 0}).status_code == 400
    assert client.get("/api/v1/agents/runs", {"limit": 200}).status_code == 200


@pytest.mark.parametrize(
    ("path", "method", "name"),
    [
        ("/api/v1/storage/records", "post", "checksum"),
        ("/api/v1/storage/records/{record_id}", "put", "checksum"),
        ("/api/v1/backup/multipart", "post", "checksum"),
    ],
)
def test_checksums_carry_the_hex_sha256_pattern_the_code_checks(openapi, path, method, name):
    assert _body_property(openapi, path, method, name)["pattern"] == "^[0-9a-fA-F]{64}$"


def test_the_backup_checksum_header_carries_the_pattern(openapi):
    assert _parameter(openapi, "/api/v1/backup", "put", "X-Backup-Checksum")["pattern"] == "^[0-9a-fA-F]{64}$"


def test_an_upper_case_checksum_the_pattern_allows_is_accepted(client):
    blob = b"ciphertext"
    checksum = hashlib.sha256(blob).hexdigest().upper()

    response = client.post(
        "/api/v1/storage/records", {"table": "notes", "blob": b64(blob), "checksum": checksum}, format="json"
    )

    assert response.status_code == 201, response.content


@pytest.mark.parametrize("text", [0, 1.5, True, ["a"], {"a": "b"}])
def test_embed_text_must_be_a_string(client, openapi, text):
    assert _body_property(openapi, "/api/v1/storage/vectors/embed", "post", "text")["type"] == "string"

    response = client.post("/api/v1/storage/vectors/embed", {"text": text}, format="json")

    assert response.status_code == 400
    assert response.json()["fields"]["text"]
