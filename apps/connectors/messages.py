"""What a fetch returns to its caller: messages in one shape for every provider, and the cursor."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple


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
