"""Health, the error shape, request ids, the schema and the admin."""

from __future__ import annotations

import json
import logging

import pytest
from django.core.cache import cache

pytestmark = pytest.mark.django_db


def test_health_reports_version_and_services(api_client):
    response = api_client.get("/api/v1/health")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["version"]
    assert body["checks"] == {"database": "ok", "redis": "ok", "storage": "ok"}


def test_health_degrades_when_redis_is_down(api_client, monkeypatch):
    def broken(*args, **kwargs):
        raise ConnectionError("redis down")

    monkeypatch.setattr(cache, "set", broken)

    response = api_client.get("/api/v1/health")

    assert response.status_code == 503
    assert response.json()["status"] == "degraded"
    assert response.json()["checks"]["redis"] == "unavailable"


def test_unknown_api_path_is_json_404(api_client):
    response = api_client.get("/api/v1/nope")

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


@pytest.mark.parametrize("path", ["/api/v1/nope", "/api/v1/plugins/x/y/z/w", "/api/v2/health", "/api/"])
@pytest.mark.parametrize("method", ["get", "post", "delete"])
def test_unknown_api_paths_are_json_404_with_debug_on_as_under_local_settings(settings, path, method):
    # given the local settings' DEBUG, under which Django answers with its HTML page of URL patterns,
    # and a client that enforces CSRF as a browser-less client meets it
    from rest_framework.test import APIClient

    settings.DEBUG = True
    api_client = APIClient(enforce_csrf_checks=True)

    response = getattr(api_client, method)(path)

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "not_found"
    assert b"URLconf" not in response.content


def test_unknown_pages_outside_the_api_keep_django_404(api_client, settings):
    settings.DEBUG = True

    response = api_client.get("/accounts/no-such-page")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_wrong_method_is_json_405(api_client):
    response = api_client.delete("/api/v1/health")

    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


def test_request_id_is_echoed_and_minted(api_client):
    echoed = api_client.get("/api/v1/health", HTTP_X_REQUEST_ID="abc-123")
    minted = api_client.get("/api/v1/health", HTTP_X_REQUEST_ID="bad id with spaces\n")

    assert echoed["X-Request-ID"] == "abc-123"
    assert minted["X-Request-ID"] != "bad id with spaces\n"
    assert len(minted["X-Request-ID"]) == 32


def test_error_bodies_carry_the_request_id(api_client):
    response = api_client.get("/api/v1/auth/me", HTTP_X_REQUEST_ID="req-42")

    assert response.json()["request_id"] == "req-42"


def test_logs_are_json_with_request_id():
    from apps.core.logging import JsonFormatter, RequestIdFilter
    from apps.core.request_context import request_id_var

    token = request_id_var.set("rid-7")
    try:
        record = logging.LogRecord("adiuva", logging.INFO, __file__, 1, "hello %s", ("world",), None)
        RequestIdFilter().filter(record)
        line = JsonFormatter().format(record)
    finally:
        request_id_var.reset(token)

    entry = json.loads(line)
    assert (entry["message"], entry["request_id"], entry["level"]) == ("hello world", "rid-7", "INFO")


def test_openapi_schema_and_docs_are_served(api_client):
    schema = api_client.get("/api/v1/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    docs = api_client.get("/api/v1/docs/")

    assert schema.status_code == 200
    assert "/api/v1/auth/register" in schema.json()["paths"]
    assert docs.status_code == 200


def test_admin_login_page_renders(client):
    response = client.get("/admin/login/")

    assert response.status_code == 200
    assert b"password" in response.content


def test_staff_can_open_the_user_admin(client, make_user):
    admin = make_user("root@example.com", is_staff=True, is_superuser=True)
    client.force_login(admin)

    assert client.get("/admin/accounts/user/").status_code == 200
    assert client.get(f"/admin/accounts/user/{admin.id}/change/").status_code == 200
    assert client.get("/admin/accounts/user/add/").status_code == 200


def test_tokens_in_uvicorn_socket_log_lines_are_redacted(caplog):
    # given uvicorn's own connect line for a socket authenticated by ?token=
    logger = logging.getLogger("uvicorn.error")

    with caplog.at_level(logging.INFO, logger="uvicorn.error"):
        logger.info('%s - "WebSocket %s" [accepted]', ("127.0.0.1", 5555), "/api/v1/ws/device?token=eyJhbGc.secret.sig")

    # then the token never reaches the log
    assert "eyJhbGc" not in caplog.text
    assert "token=[redacted]" in caplog.text


def test_health_degrades_when_blob_storage_is_down(api_client, monkeypatch):
    from django.core.files.storage import storages

    def broken(*args, **kwargs):
        raise OSError("bucket unreachable")

    monkeypatch.setattr(storages["blobs"], "exists", broken)

    response = api_client.get("/api/v1/health")

    assert response.status_code == 503
    assert response.json()["checks"]["storage"] == "unavailable"


def test_nested_serializers_are_named_after_their_view_in_the_schema(api_client):
    schema = api_client.get("/api/v1/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    components = set(schema["components"]["schemas"])

    # every app's nested InputSerializer gets its own component, none collapses into "Input"
    assert {"CredentialsInputRequest", "RecordDetailInputRequest", "ChatInputRequest"} <= components
    assert not components & {"Input", "InputRequest", "Output"}
