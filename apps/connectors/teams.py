"""The Teams client: new messages of the user's chats and of the channels of their teams.

Chats: ``GET /me/chats`` (most recently active first, at most ``max_chats``), then
``GET /chats/{id}/messages`` filtered on ``lastModifiedDateTime gt <the chat's cursor>``.
Channels: ``GET /me/joinedTeams`` and ``GET /teams/{id}/channels`` (at most ``max_chats``
channels), then ``GET /teams/{id}/channels/{id}/messages/delta`` with the same filter. ``labels``
keeps only chats whose topic or id, and channels whose name, id or "Team/Channel" matches; the date
range and senders filter messages. The cursor is ``{"chats": {chat_id: iso}, "channels": {"team/channel":
iso}}``; a conversation without one starts at ``date_range.from`` or the lookback. Edits of messages
created before the cursor are skipped, so an edited message is not returned twice. All new messages
are read, then the oldest ``max_messages`` of them are returned and each conversation's cursor moves
only past what was returned or filtered out, so a bounded fetch skips nothing.
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


class _Conversation(NamedTuple):
    kind: str  # "chats" or "channels": its part of the cursor
    key: str  # chat id, or "team_id/channel_id"
    label: str
    url: str
    ordered: bool  # the listing takes $orderby (chat messages do; a channel's delta does not)


class _Candidate(NamedTuple):
    conversation: _Conversation
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


def _chats(session: ProviderSession, *, base: str, wanted: set[str], limits: FetchLimits) -> list[_Conversation]:
    found: list[_Conversation] = []
    for page in _pages(session, f"{base}/me/chats", {"$top": str(PAGE_SIZE)}, base=base, max_pages=limits.max_pages):
        for chat in page.get("value", []):
            if chat.get("id") and (not wanted or {chat["id"].lower(), (chat.get("topic") or "").lower()} & wanted):
                url = f"{base}/chats/{quote(chat['id'], safe=':@')}/messages"
                found.append(_Conversation("chats", chat["id"], _chat_label(chat), url, True))
        if len(found) >= limits.max_chats:
            break
    return found[: limits.max_chats]


def _channels(session: ProviderSession, *, base: str, wanted: set[str], limits: FetchLimits) -> list[_Conversation]:
    found: list[_Conversation] = []
    for page in _pages(session, f"{base}/me/joinedTeams", None, base=base, max_pages=limits.max_pages):
        for team in page.get("value", []):
            if not team.get("id") or len(found) >= limits.max_chats:
                continue
            team_path = f"{base}/teams/{quote(team['id'], safe='')}"
            for channels in _pages(session, f"{team_path}/channels", None, base=base, max_pages=limits.max_pages):
                for channel in channels.get("value", []):
                    if not channel.get("id"):
                        continue
                    label = f"{team.get('displayName') or team['id']}/{channel.get('displayName') or channel['id']}"
                    names = {channel["id"].lower(), (channel.get("displayName") or "").lower(), label.lower()}
                    if not wanted or names & wanted:
                        url = f"{team_path}/channels/{quote(channel['id'], safe=':@')}/messages/delta"
                        found.append(_Conversation("channels", f"{team['id']}/{channel['id']}", label, url, False))
    return found[: limits.max_chats]


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
    wanted = {label.lower() for label in filters["labels"]}
    conversations = _chats(session, base=base, wanted=wanted, limits=limits) + _channels(
        session, base=base, wanted=wanted, limits=limits
    )

    since_by_conversation: dict[_Conversation, datetime] = {}
    candidates: list[_Candidate] = []
    for conversation in conversations:
        stored = (cursor or {}).get(conversation.kind)
        stored_at = stored.get(conversation.key) if isinstance(stored, dict) else None
        since = (parse_graph_datetime(stored_at) if isinstance(stored_at, str) else None) or start
        since_by_conversation[conversation] = since
        params = {"$top": str(PAGE_SIZE), "$filter": f"lastModifiedDateTime gt {graph_datetime(since)}"}
        if conversation.ordered:
            params["$orderby"] = "lastModifiedDateTime desc"
        for page in _pages(session, conversation.url, params, base=base, max_pages=limits.max_pages):
            for item in page.get("value", []):
                candidate = _candidate(
                    item, conversation=conversation, since=since, date_to=date_to, filters=filters, limits=limits
                )
                if candidate is not None:
                    candidates.append(candidate)

    candidates.sort(key=lambda candidate: candidate.modified_at)
    messages: list[ConnectorMessage] = []
    new_cursor: dict[str, dict[str, str]] = {"chats": {}, "channels": {}}
    for conversation, since in since_by_conversation.items():
        new_cursor[conversation.kind][conversation.key] = graph_datetime(since)
    for candidate in candidates:
        if candidate.message is not None:
            if len(messages) >= limits.max_messages:
                break
            messages.append(candidate.message)
        new_cursor[candidate.conversation.kind][candidate.conversation.key] = candidate.modified_at.isoformat()
    messages.sort(key=lambda message: message.received_at)
    return FetchResult(messages=messages, cursor=new_cursor)


def _candidate(
    item: dict[str, Any],
    *,
    conversation: _Conversation,
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
                labels=(conversation.label,),
                web_link=item.get("webUrl") or "",
            )
    return _Candidate(conversation=conversation, modified_at=modified_at, message=message)
