"""The Teams client: new messages of the user's chats, per chat, by last-modified time.

``GET /me/chats`` (most recently active first, at most ``max_chats``; ``labels`` keeps only chats
whose topic or id matches), then ``GET /chats/{id}/messages`` filtered on
``lastModifiedDateTime gt <the chat's cursor>``. The cursor is ``{"chats": {chat_id: iso}}``;
a chat without one starts at ``date_range.from`` or the lookback. Edits of messages created before
the cursor are skipped, so an edited message is not returned twice. The newest messages are read
first (Graph orders this listing newest first only), then the oldest ``max_messages`` of them are
returned and each chat's cursor moves only past what was returned or filtered out, so a bounded
fetch skips nothing. Channel messages are not read.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, NamedTuple
from urllib.parse import quote

from .graph import graph_datetime, graph_get, graph_link_is_ours
from .message_text import html_to_text, tidy_text
from .messages import (
    ConnectorMessage,
    FetchLimits,
    FetchResult,
    date_window,
    parse_graph_datetime,
    sender_matches,
)
from .transport import ProviderSession

PROVIDER = "teams"
PAGE_SIZE = 50


class _Candidate(NamedTuple):
    chat_id: str
    modified_at: datetime
    message: ConnectorMessage | None  # None: read but filtered out


def _chat_label(chat: dict[str, Any]) -> str:
    return chat.get("topic") or f"{chat.get('chatType') or 'chat'} {chat['id']}"


def _sender(item: dict[str, Any]) -> str:
    origin = item.get("from") or {}
    for kind in ("user", "application", "device"):
        if origin.get(kind):
            return origin[kind].get("displayName") or origin[kind].get("id") or ""
    return ""


def _pages(session: ProviderSession, url: str, params: dict[str, str] | None, *, base: str, max_pages: int):
    for _ in range(max_pages):
        page = graph_get(session, url, params=params)
        yield page
        next_link = page.get("@odata.nextLink")
        if not graph_link_is_ours(next_link, api_base_url=base):
            return
        url, params = str(next_link), None


def teams_fetch(
    *,
    session: ProviderSession,
    api_base_url: str,
    filters: dict,
    cursor: dict | None,
    limits: FetchLimits,
    now: datetime,
) -> FetchResult:
    base = api_base_url.rstrip("/")
    start, _, date_to = date_window(filters=filters, now=now, lookback_days=limits.lookback_days)
    stored = (cursor or {}).get("chats")
    stored = stored if isinstance(stored, dict) else {}
    wanted = {label.lower() for label in filters["labels"]}

    chats: list[dict[str, Any]] = []
    for page in _pages(session, f"{base}/me/chats", {"$top": str(PAGE_SIZE)}, base=base, max_pages=limits.max_pages):
        for chat in page.get("value", []):
            if chat.get("id") and (not wanted or {chat["id"].lower(), (chat.get("topic") or "").lower()} & wanted):
                chats.append(chat)
        if len(chats) >= limits.max_chats:
            break
    chats = chats[: limits.max_chats]

    since_by_chat: dict[str, datetime] = {}
    candidates: list[_Candidate] = []
    for chat in chats:
        chat_id = chat["id"]
        since = parse_graph_datetime(stored.get(chat_id)) if isinstance(stored.get(chat_id), str) else None
        since = since or start
        since_by_chat[chat_id] = since
        params = {
            "$top": str(PAGE_SIZE),
            "$orderby": "lastModifiedDateTime desc",
            "$filter": f"lastModifiedDateTime gt {graph_datetime(since)}",
        }
        url = f"{base}/chats/{quote(chat_id, safe=':@')}/messages"
        for page in _pages(session, url, params, base=base, max_pages=limits.max_pages):
            for item in page.get("value", []):
                candidate = _candidate(item, chat=chat, since=since, date_to=date_to, filters=filters, limits=limits)
                if candidate is not None:
                    candidates.append(candidate)

    candidates.sort(key=lambda candidate: candidate.modified_at)
    messages: list[ConnectorMessage] = []
    new_cursor = {chat_id: graph_datetime(since) for chat_id, since in since_by_chat.items()}
    for candidate in candidates:
        if candidate.message is not None:
            if len(messages) >= limits.max_messages:
                break
            messages.append(candidate.message)
        new_cursor[candidate.chat_id] = candidate.modified_at.isoformat()
    messages.sort(key=lambda message: message.received_at)
    return FetchResult(messages=messages, cursor={"chats": new_cursor})


def _candidate(
    item: dict[str, Any],
    *,
    chat: dict[str, Any],
    since: datetime,
    date_to: date | None,
    filters: dict,
    limits: FetchLimits,
) -> _Candidate | None:
    modified_at = parse_graph_datetime(item.get("lastModifiedDateTime"))
    created_at = parse_graph_datetime(item.get("createdDateTime"))
    if modified_at is None or created_at is None or not item.get("id"):
        return None
    keep = (
        item.get("messageType", "message") == "message"
        and not item.get("deletedDateTime")
        and created_at > since  # an edit of a message already returned by an earlier run
        and not (date_to and created_at.date() > date_to)
    )
    message = None
    if keep:
        body = item.get("body") or {}
        content = body.get("content") or ""
        if (body.get("contentType") or "").lower() == "html":
            content = html_to_text(content)
        sender = _sender(item)
        if sender_matches(sender, filters["senders"]):
            message = ConnectorMessage(
                id=str(item["id"]),
                provider=PROVIDER,
                subject="",
                sender=sender,
                body_text=tidy_text(content, max_chars=limits.max_body_chars),
                received_at=created_at,
                labels=(_chat_label(chat),),
                web_link=item.get("webUrl") or "",
            )
    return _Candidate(chat_id=chat["id"], modified_at=modified_at, message=message)
