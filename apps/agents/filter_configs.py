"""Validation of a cloud agent's ``filter_config`` (which mail or messages it reads).

Local stand-in with the same signature as ``apps.connectors.fetch.filter_config_validate``;
once the connectors app provides it, ``apps.agents.configs`` imports that one instead.
Shape (seed): ``{labels: [], date_range: {from, to}, senders: []}``; Outlook adds ``folders``,
Teams ``channels``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from apps.core.errors import ApplicationError

from .error_codes import AgentsErrorCode

_LIST_KEYS = {
    "gmail": ("labels", "senders"),
    "outlook": ("folders", "senders"),
    "teams": ("channels", "senders"),
}
MAX_ITEMS = 50
MAX_ITEM_CHARS = 256


def _invalid(field: str, reason: str) -> ApplicationError:
    return ApplicationError(
        AgentsErrorCode.INVALID_FILTER_CONFIG,
        f"filter_config.{field}: {reason}",
        fields={f"filter_config.{field}": [reason]},
    )


def _date(value: Any, field: str) -> str:
    try:
        return dt.date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise _invalid(field, "an ISO date (YYYY-MM-DD) is required.") from None


def filter_config_validate(*, provider: str, filter_config: dict) -> dict:
    """The normalised filter for ``provider``; a 400 naming the field for anything else."""
    if not isinstance(filter_config, dict):
        raise _invalid("", "an object is required.")
    list_keys = _LIST_KEYS.get(provider, ())
    allowed = {*list_keys, "date_range"}
    unknown = sorted(set(filter_config) - allowed)
    if unknown:
        raise _invalid(unknown[0], f"unknown for {provider}; allowed: {', '.join(sorted(allowed))}.")
    clean: dict[str, Any] = {}
    for key in list_keys:
        if key not in filter_config:
            continue
        values = filter_config[key]
        if not isinstance(values, list) or len(values) > MAX_ITEMS:
            raise _invalid(key, f"a list of at most {MAX_ITEMS} strings is required.")
        if not all(isinstance(v, str) and 0 < len(v.strip()) <= MAX_ITEM_CHARS for v in values):
            raise _invalid(key, f"every entry must be a non-empty string of at most {MAX_ITEM_CHARS} characters.")
        clean[key] = [v.strip() for v in values]
    if "date_range" in filter_config and filter_config["date_range"] is not None:
        date_range = filter_config["date_range"]
        if not isinstance(date_range, dict) or set(date_range) - {"from", "to"}:
            raise _invalid("date_range", "an object with 'from' and/or 'to' ISO dates is required.")
        bounds = {k: _date(v, f"date_range.{k}") for k, v in date_range.items() if v is not None}
        if "from" in bounds and "to" in bounds and bounds["from"] > bounds["to"]:
            raise _invalid("date_range", "'from' must not be after 'to'.")
        clean["date_range"] = bounds
    return clean
