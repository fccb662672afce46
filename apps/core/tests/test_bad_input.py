"""Hostile JSON is a 400 with a stable code, never a 500."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def _post_raw(client, path: str, body: str, **extra):
    return client.generic("POST", path, body.encode("utf-8"), content_type="application/json", **extra)


@pytest.mark.parametrize("path", ["/api/v1/auth/login", "/api/v1/auth/register"])
def test_deeply_nested_json_before_authentication_is_a_400(api_client, path):
    body = "[" * 1000 + "]" * 1000

    response = _post_raw(api_client, path, body)

    assert response.status_code == 400
    assert response.json()["code"] == "json_too_deep"


def test_moderately_deep_json_that_the_decoder_survives_is_still_refused(auth_client):
    body = '{"message": ' + '{"a": ' * 200 + "1" + "}" * 200 + "}"

    response = _post_raw(auth_client, "/api/v1/chat", body)

    assert response.status_code == 400
    assert response.json()["code"] == "json_too_deep"


def test_lone_surrogate_in_login_email_is_a_400(api_client):
    # the JSON escape of an unpaired surrogate: valid JSON, not encodable text
    response = _post_raw(api_client, "/api/v1/auth/login", '{"email": "\\ud800@x.com", "password": "x"}')

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_unicode"


def test_lone_surrogate_in_a_key_is_a_400(auth_client):
    response = _post_raw(auth_client, "/api/v1/chat", '{"message": "hi", "context": {"\\udfff": 1}}')

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_unicode"


def test_login_throttle_key_survives_any_text():
    from rest_framework.request import Request
    from rest_framework.test import APIRequestFactory

    from apps.accounts.throttles import LoginEmailThrottle

    request = Request(APIRequestFactory().post("/", {}, format="json"))
    request._full_data = {"email": "\ud800@x.com"}

    key = LoginEmailThrottle().get_cache_key(request, view=None)

    assert key is not None
    assert key.isascii()


@pytest.mark.parametrize("value", [1e39, -1e39, 3.5e38])
def test_vector_values_outside_float32_are_a_400_in_upsert_and_search(value, make_user):
    from apps.accounts.testing import client_for
    from apps.storage.models import VECTOR_DIMENSIONS
    from apps.storage.tests.conftest import b64, sha256_hex

    client = client_for(make_user("vec@example.com", tier="pro"))
    vector = [0.5] * VECTOR_DIMENSIONS
    vector[3] = value

    upsert = client.post(
        "/api/v1/storage/vectors/upsert",
        {"vectors": [{"id": "v1", "blob": b64(b"c"), "checksum": sha256_hex(b"c"), "vector": vector}]},
        format="json",
    )
    search = client.post("/api/v1/storage/vectors/search", {"query_vector": vector, "top_k": 3}, format="json")

    assert (upsert.status_code, upsert.json()["code"]) == (400, "invalid_vector")
    assert (search.status_code, search.json()["code"]) == (400, "invalid_vector")
