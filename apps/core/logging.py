"""Structured logs: one JSON object per line, stamped with the current request id, secrets redacted."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

from .request_context import current_request_id

# uvicorn adds an ANSI-coloured copy of each message; the JSON line keeps the plain one.
_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id", "color_message"}

# ``token=…`` / ``password=…`` in URLs and query strings, ``"password": "…"`` in JSON, and bearer tokens.
_SECRET_PARAMS = re.compile(
    r"(?i)\b((?:access_|refresh_|id_)?token|password|secret|code|api_key|key|signature)=([^&\s\"'<>]+)"
)
_SECRET_JSON = re.compile(r"(?i)(\"(?:(?:access_|refresh_)?token|password|secret)\"\s*:\s*\")([^\"]*)(\")")
_BEARER = re.compile(r"(?i)\b(bearer\s+)([A-Za-z0-9._~+/=-]+)")


def redact(text: str) -> str:
    """Blank every secret-looking value in ``text``."""
    text = _SECRET_PARAMS.sub(r"\1=[redacted]", text)
    text = _SECRET_JSON.sub(r"\1[redacted]\3", text)
    return _BEARER.sub(r"\1[redacted]", text)


def _redacted_value(value: Any) -> Any:
    """A JSON-ready, redacted copy of an extra log field (a ``request`` object becomes its redacted repr)."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        return {str(key): _redacted_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted_value(item) for item in value]
    return redact(value if isinstance(value, str) else str(value))


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        # Django logs a 4xx/5xx (``django.request``) after the middleware chain has returned and the
        # context variable is reset; such records carry the request itself.
        record.request_id = current_request_id() or getattr(getattr(record, "request", None), "request_id", None)
        return True


class JsonFormatter(logging.Formatter):
    """Every field of the record is redacted, not only the message: Django's ``django.request`` lines carry
    the whole request (its URL with the query string) as an extra field."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            "request_id": getattr(record, "request_id", None),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                payload[key] = _redacted_value(value)
        if record.exc_info:
            payload["exc_info"] = redact(self.formatException(record.exc_info))
        return json.dumps(payload, default=str)


class RedactSecretsFilter(logging.Filter):
    """Blank secrets in the message for handlers that don't use the JSON formatter (e.g. pytest's capture)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True
