"""Microsoft Graph over plain HTTP (httpx through ``ProviderSession``): JSON pages and errors.

Chosen over msgraph-sdk by ``bench/connectors_sdk_cost.py`` (import time and memory); the two
endpoints used here are a handful of GETs with OData paging.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from .error_codes import ConnectorErrorCode
from .errors import ConnectorError
from .transport import ProviderSession


class GraphGone(Exception):
    """410 Gone: a delta token the service no longer knows; the caller starts a fresh sync."""


def graph_get(
    session: ProviderSession,
    url: str,
    *,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    response = session.send("GET", url, params=params, headers={"Accept": "application/json", **(headers or {})})
    if response.status_code == 410:
        raise GraphGone(url)
    if response.status_code >= 400:
        try:
            code = str(response.json().get("error", {}).get("code", ""))[:80]
        except (ValueError, AttributeError):
            code = ""
        raise ConnectorError(
            ConnectorErrorCode.PROVIDER_REQUEST_FAILED,
            f"Microsoft Graph refused the request (HTTP {response.status_code}{', ' + code if code else ''}).",
            extra={"provider": session.provider},
        )
    try:
        body = response.json()
    except ValueError:
        raise ConnectorError(
            ConnectorErrorCode.PROVIDER_REQUEST_FAILED,
            "Microsoft Graph answered something other than JSON.",
            extra={"provider": session.provider},
        ) from None
    return body if isinstance(body, dict) else {}


def graph_link_is_ours(link: Any, *, api_base_url: str) -> bool:
    """A stored next/delta link is followed (with the bearer token) only if it points at Graph."""
    return isinstance(link, str) and link.startswith(api_base_url.rstrip("/") + "/")


def graph_datetime(value: datetime) -> str:
    """An aware datetime in the form Graph's ``$filter`` expects (``2026-11-27T10:00:00Z``)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
