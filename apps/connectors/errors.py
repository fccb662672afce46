"""The error connectors raise: an ``ApplicationError`` whose code is a ``ConnectorErrorCode``."""

from __future__ import annotations

from typing import Any

from apps.core.errors import ApplicationError

from .error_codes import ConnectorErrorCode

# The HTTP status each code answers with when it reaches a REST door.
_STATUS: dict[ConnectorErrorCode, int] = {
    ConnectorErrorCode.PROVIDER_UNKNOWN: 404,
    ConnectorErrorCode.PROVIDER_NOT_CONFIGURED: 503,
    ConnectorErrorCode.GRANT_MISSING: 404,
    ConnectorErrorCode.GRANT_NEEDS_RECONNECT: 409,
    ConnectorErrorCode.PROVIDER_RATE_LIMITED: 429,
    ConnectorErrorCode.PROVIDER_UNAVAILABLE: 503,
    ConnectorErrorCode.PROVIDER_REQUEST_FAILED: 502,
}


class ConnectorError(ApplicationError):
    """A connector failure with a stable code; the status follows from the code unless given."""

    def __init__(
        self,
        code: ConnectorErrorCode,
        message: str,
        *,
        status: int | None = None,
        fields: dict[str, list[str]] | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(
            code,
            message,
            status=status if status is not None else _STATUS.get(code, 400),
            fields=fields,
            extra=extra,
            headers=headers,
        )


def rate_limited(*, provider: str, retry_after: int) -> ConnectorError:
    return ConnectorError(
        ConnectorErrorCode.PROVIDER_RATE_LIMITED,
        f"{provider} is rate limiting this account; retry in {retry_after} s.",
        extra={"retry_after": retry_after, "provider": provider},
        headers={"Retry-After": str(retry_after)},
    )
