"""Stable error codes of the connectors app: OAuth flow, grants, provider calls, filters."""

from enum import StrEnum


class ConnectorErrorCode(StrEnum):
    PROVIDER_UNKNOWN = "provider_unknown"
    PROVIDER_NOT_CONFIGURED = "provider_not_configured"
    OAUTH_STATE_INVALID = "oauth_state_invalid"
    OAUTH_STATE_EXPIRED = "oauth_state_expired"
    OAUTH_STATE_USED = "oauth_state_used"
    OAUTH_PROVIDER_ERROR = "oauth_provider_error"
    OAUTH_EXCHANGE_FAILED = "oauth_exchange_failed"
    OAUTH_SCOPE_MISSING = "oauth_scope_missing"
    GRANT_MISSING = "grant_missing"
    GRANT_NEEDS_RECONNECT = "grant_needs_reconnect"
    PROVIDER_RATE_LIMITED = "provider_rate_limited"
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    PROVIDER_REQUEST_FAILED = "provider_request_failed"
    FILTER_INVALID = "filter_invalid"
