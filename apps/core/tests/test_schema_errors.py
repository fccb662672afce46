"""The AutoSchema declares, once for every operation, the error responses that can reach it."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def schema(django_db_blocker) -> dict:
    from rest_framework.test import APIClient

    with django_db_blocker.unblock():
        return APIClient().get("/api/v1/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()


def _statuses(schema: dict, path: str, method: str) -> set[str]:
    return set(schema["paths"][path][method]["responses"])


def test_authenticated_body_operation_declares_every_error_it_can_meet(schema):
    assert {"400", "401", "403", "404", "405", "413", "415", "429", "503"} <= _statuses(
        schema, "/api/v1/storage/records", "post"
    )


def test_public_read_declares_no_authentication_errors(schema):
    statuses = _statuses(schema, "/api/v1/health", "get")

    assert {"405", "503"} <= statuses
    assert not statuses & {"401", "403", "413", "415"}


def test_error_responses_use_the_shared_error_component(schema):
    response = schema["paths"]["/api/v1/auth/me"]["get"]["responses"]["401"]

    assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    assert {"code", "message", "detail"} <= set(schema["components"]["schemas"]["Error"]["required"])


def test_explicit_declarations_win_over_the_generic_ones(schema):
    login_401 = schema["paths"]["/api/v1/auth/login"]["post"]["responses"]["401"]

    assert login_401["description"] == "Wrong credentials."


def test_a_delete_declares_415_only_when_it_reads_a_body(schema):
    # a DELETE without a request body can still be sent one (capped: 413) but never parses it
    plain = _statuses(schema, "/api/v1/storage/records/{record_id}", "delete")
    with_body = _statuses(schema, "/api/v1/storage/vectors", "delete")

    assert "413" in plain
    assert "415" not in plain
    assert {"413", "415"} <= with_body
