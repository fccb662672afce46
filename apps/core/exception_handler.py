"""DRF exception handler: every 4xx/5xx leaves as ``{code, message, detail, fields?, request_id}``."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError

from . import database_outage
from .errors import ApplicationError, CoreErrorCode
from .redis_outage import RETRY_AFTER_SECONDS, is_redis_unavailable, redis_outage_noted
from .request_context import current_request_id

logger = logging.getLogger(__name__)

_CODES: list[tuple[type[Exception], CoreErrorCode]] = [
    (InvalidToken, CoreErrorCode.TOKEN_INVALID),
    (exceptions.ParseError, CoreErrorCode.MALFORMED_REQUEST),
    (exceptions.NotAuthenticated, CoreErrorCode.NOT_AUTHENTICATED),
    (exceptions.AuthenticationFailed, CoreErrorCode.AUTHENTICATION_FAILED),
    (exceptions.PermissionDenied, CoreErrorCode.PERMISSION_DENIED),
    (exceptions.NotFound, CoreErrorCode.NOT_FOUND),
    (exceptions.MethodNotAllowed, CoreErrorCode.METHOD_NOT_ALLOWED),
    (exceptions.UnsupportedMediaType, CoreErrorCode.UNSUPPORTED_MEDIA_TYPE),
    (exceptions.NotAcceptable, CoreErrorCode.NOT_ACCEPTABLE),
    (exceptions.Throttled, CoreErrorCode.RATE_LIMITED),
]


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    # ``detail`` repeats the message for clients written against the earlier FastAPI backend.
    return {"code": code, "message": message, "detail": message, **extra, "request_id": current_request_id()}


def _flatten(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """Turn DRF's nested error detail into ``{"field.sub": ["reason", ...]}``."""
    if isinstance(detail, dict):
        flat: dict[str, list[str]] = {}
        for key, value in detail.items():
            flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            return {prefix or "non_field_errors": [str(item) for item in detail]}
        flat = {}
        for index, value in enumerate(detail):
            flat.update(_flatten(value, f"{prefix}.{index}" if prefix else str(index)))
        return flat
    return {prefix or "non_field_errors": [str(detail)]}


def _validation_response(exc: exceptions.ValidationError) -> Response:
    fields = _flatten(exc.detail)
    summary = "; ".join(f"{name}: {' '.join(reasons)}" for name, reasons in fields.items())
    return Response(
        error_body(CoreErrorCode.VALIDATION_ERROR, f"Invalid input. {summary}".strip(), fields=fields),
        status=status.HTTP_400_BAD_REQUEST,
    )


def database_unavailable_response() -> Response:
    return Response(
        error_body(CoreErrorCode.DATABASE_UNAVAILABLE, "The database is briefly unavailable; retry shortly."),
        status=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": str(database_outage.RETRY_AFTER_SECONDS)},
    )


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    if is_redis_unavailable(exc):
        redis_outage_noted(where=context.get("view").__class__.__name__, exc=exc)
        return Response(
            error_body(CoreErrorCode.REDIS_UNAVAILABLE, "A backing service is briefly unavailable; retry shortly."),
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    if database_outage.is_database_unavailable(exc):
        database_outage.database_outage_noted(where=context.get("view").__class__.__name__, exc=exc)
        return database_unavailable_response()
    if isinstance(exc, ApplicationError):
        body = error_body(exc.code, exc.message, **exc.extra)
        if exc.fields:
            body["fields"] = exc.fields
        return Response(body, status=exc.status, headers=exc.headers)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        return Response(
            error_body(CoreErrorCode.PAYLOAD_TOO_LARGE, "The request body is too large."),
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    elif isinstance(exc, TokenError):
        exc = InvalidToken(str(exc))

    if isinstance(exc, exceptions.ValidationError):
        return _validation_response(exc)
    if isinstance(exc, exceptions.APIException):
        code = next((c for kind, c in _CODES if isinstance(exc, kind)), None)
        if code is None:
            code = CoreErrorCode.INTERNAL_ERROR if exc.status_code >= 500 else CoreErrorCode.VALIDATION_ERROR
        message = _message_of(exc.detail)
        headers: dict[str, str] = {}
        # DRF's Throttled sets ``wait`` in __init__; its stubs leave the attribute out.
        wait = getattr(exc, "wait", None) if isinstance(exc, exceptions.Throttled) else None
        if wait is not None:
            headers["Retry-After"] = str(max(1, int(wait + 0.999)))
        if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
            headers["WWW-Authenticate"] = 'Bearer realm="api"'
        return Response(error_body(code, message), status=exc.status_code, headers=headers)

    logger.exception("unhandled error in %s", context.get("view").__class__.__name__)
    return Response(
        error_body(CoreErrorCode.INTERNAL_ERROR, "An internal error occurred."),
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )


def _message_of(detail: Any) -> str:
    if isinstance(detail, dict):
        inner = detail.get("detail") or next(iter(detail.values()), "")
        return _message_of(inner)
    if isinstance(detail, list):
        return " ".join(_message_of(item) for item in detail)
    return str(detail)
