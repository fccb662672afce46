"""Hostile JSON is a 400 with a stable code, never a 500."""

from __future__ import annotations

import json

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


HUGE_PAGE = "200000000000000000"
# A value for each path parameter of a paginated list (the test adds its own team's id); a new
# parameter fails the walk until it is named here.
PATH_SAMPLES = {"kind": "core"}


def _list_operations_with_a_page(client, samples: dict[str, str]) -> list[str]:
    """Every GET of the OpenAPI schema that takes ``page``, its path parameters filled from ``samples``."""
    schema = client.get("/api/v1/schema?format=json").json()
    paths = []
    for path, operations in schema["paths"].items():
        get = operations.get("get")
        if not get or not any(p["name"] == "page" and p["in"] == "query" for p in get.get("parameters", [])):
            continue
        for parameter in get.get("parameters", []):
            if parameter["in"] == "path":
                path = path.replace("{" + parameter["name"] + "}", samples[parameter["name"]])
        paths.append(path)
    return paths


def test_every_list_endpoint_answers_a_huge_page_without_a_server_error(make_user):
    # given a user whose tier opens every list (marketplace, memory, storage, agents)
    from apps.storage.tests.conftest import client_for
    from apps.teams.models import Membership
    from apps.teams.services import team_create

    user = make_user("pages@example.com", tier="power", email_verified=True)
    client = client_for(user)
    team = team_create(user=make_user("owner@example.com"), name="Pages")
    Membership.objects.create(team=team, user=user, role="member")
    paths = _list_operations_with_a_page(client, {**PATH_SAMPLES, "team_id": str(team.id)})
    assert {
        "/api/v1/agents/runs",
        "/api/v1/plugins",
        "/api/v1/storage/records",
        f"/api/v1/teams/{team.id}/members",
    } <= set(paths)

    # when each is asked for a page far past PostgreSQL's bigint offset
    answers = {path: client.get(path, {"page": HUGE_PAGE}) for path in paths}

    # then each refuses the page by name, as bad input
    for path, response in answers.items():
        assert response.status_code == 400, (path, response.status_code, response.content[:300])
        assert response.json()["code"] == "validation_error", path
        assert "page" in response.json()["fields"], path


def test_the_last_allowed_page_is_an_empty_list_not_an_error(make_user):
    from apps.core.pagination import PAGE_MAX
    from apps.storage.tests.conftest import client_for

    client = client_for(make_user("lastpage@example.com", tier="power", email_verified=True))

    runs = client.get("/api/v1/agents/runs", {"page": PAGE_MAX, "limit": 200})
    plugins = client.get("/api/v1/plugins", {"page": PAGE_MAX})

    assert (runs.status_code, runs.json()) == (200, [])
    assert (plugins.status_code, plugins.json()["plugins"]) == (200, [])


@pytest.mark.parametrize(
    "body",
    [
        '{"message": "hi", "context": {"a\\u0000b": 1}}',
        '{"message": "hi", "context": {"outer": [{"deep": {"k\\u0000": "v"}}]}}',
        '{"message": "hi", "context": {"a": "v\\u0000"}}',
    ],
    ids=["key", "nested-key", "value"],
)
def test_a_nul_anywhere_in_json_text_is_a_400(auth_client, body):
    response = _post_raw(auth_client, "/api/v1/chat", body)

    assert response.status_code == 400
    assert response.json()["code"] == "nul_character"


@pytest.mark.parametrize("extra", [{"na\x00me": 1}, {"extra": {"a": [{"b\x00": 1}]}}], ids=["key", "nested-key"])
def test_a_nul_in_a_manifest_key_on_plugin_version_creation_is_a_400(make_user, extra):
    # given a developer with a plugin
    from apps.marketplace.tests.conftest import manifest
    from apps.storage.tests.conftest import client_for

    client = client_for(make_user("dev-nul@example.com", tier="pro", email_verified=True))
    created = client.post("/api/v1/plugins/developer/plugins", {"manifest": manifest()}, format="json")
    assert created.status_code == 201, created.content

    # when a version's manifest holds a NUL in a key (json.dumps writes it as the escape \u0000)
    body = json.dumps({"manifest": {**manifest(version="1.0.1"), **extra}})
    response = _post_raw(client, "/api/v1/plugins/developer/plugins/time-tracker/versions", body)

    # then it is refused as bad text, not a database error
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "nul_character"
