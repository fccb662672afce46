"""The Outlook client: mail of one or more folders through Graph's message delta query.

Each folder (``labels``: well-known names such as ``inbox``, ``archive``, or folder ids; default
``inbox``) keeps its own link in the cursor, ``{"delta_links": {folder: url}}``: the
``@odata.deltaLink`` once a sync round is complete, or the ``@odata.nextLink`` where a fetch
stopped at ``max_messages`` (the next fetch resumes there, nothing skipped). A first sync starts
at ``date_range.from`` or the lookback; senders and ``date_range.to`` are applied to each message.
A delta link Graph has forgotten (410) starts a fresh sync of that folder.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from urllib.parse import quote

from .graph import GraphGone, graph_datetime, graph_get, graph_link_is_ours
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

PROVIDER = "outlook"
PAGE_SIZE = 50
SELECT = "id,subject,from,receivedDateTime,body,webLink,isDraft"


def _sender(item: dict[str, Any]) -> str:
    address = ((item.get("from") or {}).get("emailAddress")) or {}
    name, mail = address.get("name") or "", address.get("address") or ""
    return f"{name} <{mail}>" if name and mail else name or mail


def _message(item: dict[str, Any], *, folder: str, limits: FetchLimits) -> ConnectorMessage | None:
    received_at = parse_graph_datetime(item.get("receivedDateTime"))
    if received_at is None or item.get("isDraft"):
        return None
    body = item.get("body") or {}
    content = body.get("content") or ""
    if (body.get("contentType") or "").lower() == "html":
        content = html_to_text(content)
    return ConnectorMessage(
        id=str(item["id"]),
        provider=PROVIDER,
        subject=item.get("subject") or "",
        sender=_sender(item),
        body_text=tidy_text(content, max_chars=limits.max_body_chars),
        received_at=received_at,
        labels=(folder,),
        web_link=item.get("webLink") or "",
    )


def outlook_fetch(
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
    stored = (cursor or {}).get("delta_links")
    stored = stored if isinstance(stored, dict) else {}
    links: dict[str, str] = {}
    messages: list[ConnectorMessage] = []
    for folder in filters["labels"] or ["inbox"]:
        resume = stored.get(folder)
        links[folder] = _sync_folder(
            session=session,
            base=base,
            folder=folder,
            resume=resume if graph_link_is_ours(resume, api_base_url=base) else None,
            start=start,
            date_to=date_to,
            senders=filters["senders"],
            limits=limits,
            out=messages,
        )
    messages.sort(key=lambda message: message.received_at)
    return FetchResult(messages=messages, cursor={"delta_links": links})


def _sync_folder(
    *,
    session: ProviderSession,
    base: str,
    folder: str,
    resume: str | None,
    start: datetime,
    date_to: date | None,
    senders: list[str],
    limits: FetchLimits,
    out: list[ConnectorMessage],
) -> str:
    """Append the folder's new messages to ``out`` (up to the bound); return where to resume."""
    initial_url = f"{base}/me/mailFolders/{quote(folder, safe='')}/messages/delta"
    initial_params = {"$select": SELECT, "$filter": f"receivedDateTime ge {graph_datetime(start)}"}
    url, params = (resume, None) if resume else (initial_url, initial_params)
    for _ in range(limits.max_pages):
        remaining = limits.max_messages - len(out)
        if remaining <= 0:
            return url if params is None else resume or ""
        # Page size per request: a page never holds more than the fetch may still return.
        headers = {"Prefer": f'odata.maxpagesize={min(PAGE_SIZE, remaining)}, outlook.body-content-type="text"'}
        try:
            page = graph_get(session, url, params=params, headers=headers)
        except GraphGone:
            url, params = initial_url, initial_params
            page = graph_get(session, url, params=params, headers=headers)
        for item in page.get("value", []):
            if "@removed" in item or not item.get("id"):
                continue
            message = _message(item, folder=folder, limits=limits)
            if message is None or not sender_matches(message.sender, senders):
                continue
            if date_to and message.received_at.date() > date_to:
                continue
            out.append(message)
        if page.get("@odata.deltaLink"):
            return str(page["@odata.deltaLink"])
        next_link = page.get("@odata.nextLink")
        if not next_link:
            break
        url, params = str(next_link), None
    return url if params is None else resume or ""
