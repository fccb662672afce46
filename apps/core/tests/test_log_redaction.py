"""No secret reaches a log line through any field of the record, not only its message."""

from __future__ import annotations

import json
import logging

import pytest
from django.test import RequestFactory

from apps.core.logging import JsonFormatter, RedactSecretsFilter, RequestIdFilter


def _format(record: logging.LogRecord) -> str:
    RequestIdFilter().filter(record)
    RedactSecretsFilter().filter(record)
    return JsonFormatter().format(record)


def test_django_request_field_with_a_token_in_the_url_is_redacted():
    # given Django's own "Not Found"/"Unauthorized" line, which carries the request as an extra field
    request = RequestFactory().get("/api/v1/auth/me?token=SECRET-CANARY-1&page=2")
    record = logging.makeLogRecord(
        {
            "name": "django.request",
            "levelno": logging.WARNING,
            "levelname": "WARNING",
            "msg": "Unauthorized: %s",
            "args": (request.path,),
            "request": request,
            "status_code": 401,
        }
    )

    # when it is formatted
    line = _format(record)

    # then the URL is there, its secret is not
    assert "SECRET-CANARY-1" not in line
    entry = json.loads(line)
    assert "token=[redacted]" in entry["request"]
    assert entry["status_code"] == 401


@pytest.mark.parametrize(
    "extra",
    [
        {"url": "https://x/cb?code=SECRET-CANARY-2&state=s"},
        {"headers": {"Authorization": "Bearer SECRET-CANARY-2"}},
        {"body": '{"email": "a@b.c", "password": "SECRET-CANARY-2"}'},
        {"args_list": ["refresh_token=SECRET-CANARY-2"]},
    ],
)
def test_secrets_in_any_extra_field_are_redacted(extra):
    record = logging.makeLogRecord({"name": "adiuva", "msg": "event", **extra})

    assert "SECRET-CANARY-2" not in _format(record)


def test_secrets_in_a_traceback_are_redacted():
    try:
        raise ValueError("GET /api/v1/auth/me?access_token=SECRET-CANARY-3")
    except ValueError:
        record = logging.makeLogRecord({"name": "adiuva", "msg": "boom", "exc_info": __import__("sys").exc_info()})

    assert "SECRET-CANARY-3" not in _format(record)


@pytest.mark.django_db
def test_a_request_with_a_token_in_its_query_logs_no_secret(api_client, caplog) -> None:
    # given the JSON handler the app logs through
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    lines: list[str] = []
    handler.emit = lambda record: lines.append(handler.format(record))  # type: ignore[method-assign]  # capture
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        # when a client puts a secret in the URL of a request Django logs (a 401)
        api_client.get("/api/v1/auth/me?token=SECRET-CANARY-4")
    finally:
        root.removeHandler(handler)

    # then the request was logged, without the secret
    assert any("/api/v1/auth/me" in line for line in lines)
    assert not any("SECRET-CANARY-4" in line for line in lines)


@pytest.mark.django_db
def test_djangos_own_request_log_lines_carry_the_request_id(api_client) -> None:
    # given the JSON handler with the request-id filter, as configured
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    lines: list[str] = []
    handler.emit = lambda record: lines.append(handler.format(record))  # type: ignore[method-assign]  # capture
    logger = logging.getLogger("django.request")
    logger.addHandler(handler)
    try:
        # when a request Django logs itself (a 401, logged after the middleware chain returned)
        api_client.get("/api/v1/auth/me", HTTP_X_REQUEST_ID="req-log-1")
    finally:
        logger.removeHandler(handler)

    # then its line names the request
    [entry] = [json.loads(line) for line in lines]
    assert (entry["logger"], entry["request_id"]) == ("django.request", "req-log-1")
