"""What a fetch returns to its caller: messages in one shape for every provider, and the cursor."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple


@dataclass(frozen=True)
class ConnectorMessage:
    id: str
    provider: str
    subject: str  # "" for Teams messages
    sender: str
    body_text: str
    received_at: datetime  # aware UTC
    labels: tuple[str, ...] = ()  # Gmail labels / Outlook folder / Teams chat or channel name
    web_link: str = ""


class FetchResult(NamedTuple):
    messages: list[ConnectorMessage]
    cursor: dict  # store and pass back next time ("since last run")


class FetchLimits(NamedTuple):
    """Bounds of one fetch (from settings, ``max_messages`` from the caller)."""

    max_messages: int
    max_body_chars: int
    max_pages: int
    max_chats: int
    lookback_days: int


class DateWindow(NamedTuple):
    """The days a fetch covers: from ``start`` (the filter's first day at midnight, or the lookback)
    to ``date_to`` inclusive (None: until now). ``date_from`` is the filter's own first day, if any."""

    start: datetime
    date_from: date | None
    date_to: date | None


def date_window(*, filters: dict[str, Any], now: datetime, lookback_days: int) -> DateWindow:
    """The window of ``filters["date_range"]`` (validated ISO dates), the lookback filling a missing start."""
    date_range = filters.get("date_range") or {}
    date_from = date.fromisoformat(date_range["from"]) if date_range.get("from") else None
    date_to = date.fromisoformat(date_range["to"]) if date_range.get("to") else None
    start = (
        datetime.combine(date_from, datetime.min.time(), tzinfo=now.tzinfo)
        if date_from
        else now - timedelta(days=lookback_days)
    )
    return DateWindow(start=start, date_from=date_from, date_to=date_to)


def parse_graph_datetime(value: str | None) -> datetime | None:
    """An aware UTC datetime from Graph's ISO 8601 (``2026-11-27T10:00:00.123Z``); ``None`` if unreadable."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def sender_matches(sender: str, senders: list[str]) -> bool:
    """True when no sender filter is set or the sender's name/address contains one of them."""
    if not senders:
        return True
    lowered = sender.lower()
    return any(wanted.lower() in lowered for wanted in senders)
