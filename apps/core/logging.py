"""Structured logs: one JSON object per line, stamped with the current request id."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

from .request_context import current_request_id

# uvicorn adds an ANSI-coloured copy of each message; the JSON line keeps the plain one.
_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id", "color_message"}


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


_SECRET_PARAMS = re.compile(r"(?i)\b((?:access_|refresh_)?token|password|secret)=([^&\s\"']+)")


class RedactSecretsFilter(logging.Filter):
    """Blank ``token=…`` style values (e.g. the device socket's ``?token=``) in any log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _SECRET_PARAMS.sub(r"\1=[redacted]", message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True
