"""The one application error: services raise it, REST renders it as JSON, sockets as a frame."""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class CoreErrorCode(StrEnum):
    """Codes shared by every door; domain apps add theirs in their own ``error_codes.py``."""

    VALIDATION_ERROR = "validation_error"
    MALFORMED_REQUEST = "malformed_request"
    JSON_TOO_DEEP = "json_too_deep"
    INVALID_UNICODE = "invalid_unicode"
    NUL_CHARACTER = "nul_character"
    NOT_AUTHENTICATED = "not_authenticated"
    AUTHENTICATION_FAILED = "authentication_failed"
    TOKEN_INVALID = "token_invalid"
    PERMISSION_DENIED = "permission_denied"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    NOT_ACCEPTABLE = "not_acceptable"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    RATE_LIMITED = "rate_limited"
    CONFLICT = "conflict"
    SERVICE_UNAVAILABLE = "service_unavailable"
    REDIS_UNAVAILABLE = "redis_unavailable"
    DATABASE_UNAVAILABLE = "database_unavailable"
    INTERNAL_ERROR = "internal_error"


class ApplicationError(Exception):
    """A failure the caller can act on: a stable ``code``, a human ``message``, an HTTP status."""

    def __init__(
        self,
        code: StrEnum | str,
        message: str,
        *,
        status: int = 400,
        fields: dict[str, list[str]] | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = str(code)
        self.message = message
        self.status = status
        self.fields = fields
        self.extra = extra or {}
        self.headers = headers or {}

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message, **self.extra}
        if self.fields:
            body["fields"] = self.fields
        return body

    def __repr__(self) -> str:
        return f"ApplicationError({self.code!r}, {self.message!r}, status={self.status})"


class NotFoundError(ApplicationError):
    """Missing, or belonging to someone else: both look the same to the caller."""

    def __init__(self, what: str = "Resource") -> None:
        super().__init__(CoreErrorCode.NOT_FOUND, f"{what} not found.", status=404)
