"""Validation of an agent's ``filter_config``: labels, senders and a date range, the same for every provider.

``labels`` are Gmail label names or ids, Outlook folder names (well-known names such as
``inbox`` or display names), or Teams chat topics / ids; ``senders`` match the sender's address
or display name; ``date_range`` is ``{from, to}`` ISO dates, both inclusive.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from .error_codes import ConnectorErrorCode
from .errors import ConnectorError
from .provider_config import provider_parse

MAX_LABELS = 20
MAX_SENDERS = 50
MAX_ITEM_CHARS = 200
ALLOWED_KEYS = ("labels", "senders", "date_range")


def _invalid(field: str, message: str) -> ConnectorError:
    return ConnectorError(
        ConnectorErrorCode.FILTER_INVALID,
        f"filter_config.{field}: {message}",
        status=400,
        fields={f"filter_config.{field}": [message]},
    )


def _string_list(value: Any, *, field: str, limit: int) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _invalid(field, "Must be a list of strings.")
    if len(value) > limit:
        raise _invalid(field, f"At most {limit} entries.")
    items: list[str] = []
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise _invalid(field, "Every entry must be a non-empty string.")
        item = item.strip()
        if len(item) > MAX_ITEM_CHARS:
            raise _invalid(field, f"Entries are at most {MAX_ITEM_CHARS} characters.")
        if item.lower() not in (seen.lower() for seen in items):
            items.append(item)
    return items


def _iso_date(value: Any, *, field: str) -> date | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise _invalid(field, "Must be an ISO date (YYYY-MM-DD).")
    try:
        return date.fromisoformat(value)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value).date()
    except ValueError:
        raise _invalid(field, "Must be an ISO date (YYYY-MM-DD).") from None


def filter_config_validate(*, provider: str, filter_config: dict) -> dict:
    """The normalised filter (``labels``, ``senders``, optional ``date_range``), or a 400 naming the field."""
    provider_parse(provider)
    if filter_config is None:
        filter_config = {}
    if not isinstance(filter_config, dict):
        raise ConnectorError(
            ConnectorErrorCode.FILTER_INVALID,
            "filter_config must be an object.",
            status=400,
            fields={"filter_config": ["Must be an object."]},
        )
    unknown = sorted(set(filter_config) - set(ALLOWED_KEYS))
    if unknown:
        raise _invalid(unknown[0], f"Unknown key; expected {', '.join(ALLOWED_KEYS)}.")
    normalised: dict[str, Any] = {
        "labels": _string_list(filter_config.get("labels"), field="labels", limit=MAX_LABELS),
        "senders": _string_list(filter_config.get("senders"), field="senders", limit=MAX_SENDERS),
    }
    date_range = filter_config.get("date_range")
    if date_range not in (None, {}):
        if not isinstance(date_range, dict):
            raise _invalid("date_range", "Must be an object {from, to}.")
        extra = sorted(set(date_range) - {"from", "to"})
        if extra:
            raise _invalid(f"date_range.{extra[0]}", "Unknown key; expected from, to.")
        start = _iso_date(date_range.get("from"), field="date_range.from")
        end = _iso_date(date_range.get("to"), field="date_range.to")
        if start and end and start > end:
            raise _invalid("date_range", "'from' is after 'to'.")
        if start or end:
            normalised["date_range"] = {
                "from": start.isoformat() if start else None,
                "to": end.isoformat() if end else None,
            }
    return normalised
