"""The Gmail client: messages matching a filter, and "since last run" through the history API.

Built on google-api-python-client with the bundled (static) discovery document; its HTTP goes
through ``GoogleHttpAdapter`` so the shared retry policy applies and tests reach a loopback fake.

- First run (no cursor): the newest ``max_messages`` messages matching ``q`` (senders → ``from:``,
  date range → ``after:``/``before:``, default ``after:`` = the lookback) and ``labelIds`` (all
  of the labels); the cursor is the mailbox ``historyId`` read before listing, so nothing that
  arrives meanwhile is missed.
- Later runs (``{"history_id": ...}``): ``users.history.list`` of added messages after it, the
  same filters applied to each message; a 404 (history id too old) falls back to a full list.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
from datetime import UTC, date, datetime, timedelta
from typing import Any

from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from .error_codes import ConnectorErrorCode
from .errors import ConnectorError
from .message_text import html_to_text, tidy_text
from .messages import ConnectorMessage, FetchLimits, FetchResult, date_window, sender_matches
from .transport import GoogleHttpAdapter, ProviderSession

PROVIDER = "gmail"
PAGE_SIZE = 100
# Labels a history entry can carry that a listing (includeSpamTrash=false, no drafts) would not show.
_HIDDEN_LABELS = frozenset({"SPAM", "TRASH", "DRAFT"})
_QUERY_UNSAFE = str.maketrans("", "", '"{}()')


def gmail_service(*, session: ProviderSession, api_base_url: str) -> Any:
    return build(
        "gmail",
        "v1",
        http=GoogleHttpAdapter(session),
        static_discovery=True,
        cache_discovery=False,
        client_options={"api_endpoint": api_base_url},
    )


def _quote(term: str) -> str:
    term = term.translate(_QUERY_UNSAFE).strip()
    return f'"{term}"' if any(ch.isspace() for ch in term) else term


def gmail_query(*, senders: list[str], date_from: date | None, date_to: date | None) -> str:
    """Gmail search syntax for the filter: ``{from:a from:b}`` is an OR; ``before:`` is exclusive."""
    parts: list[str] = []
    if senders:
        parts.append("{" + " ".join(f"from:{_quote(sender)}" for sender in senders) + "}")
    if date_from:
        parts.append(f"after:{date_from:%Y/%m/%d}")
    if date_to:
        parts.append(f"before:{date_to + timedelta(days=1):%Y/%m/%d}")
    return " ".join(parts)


def _decode_part(data: str, charset: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    except (binascii.Error, ValueError):
        return ""
    try:
        return raw.decode(charset or "utf-8", errors="replace")
    except LookupError:
        return raw.decode("utf-8", errors="replace")


def _charset(part: dict[str, Any]) -> str:
    for header in part.get("headers") or []:
        if header.get("name", "").lower() == "content-type":
            for param in header.get("value", "").split(";")[1:]:
                key, _, value = param.strip().partition("=")
                if key.lower() == "charset":
                    return value.strip('"')
    return "utf-8"


def _bodies(part: dict[str, Any], found: dict[str, str]) -> None:
    """Collect the first inline text/plain and text/html bodies of a MIME tree."""
    mime = (part.get("mimeType") or "").lower()
    data = (part.get("body") or {}).get("data")
    if data and not part.get("filename") and mime in ("text/plain", "text/html") and mime not in found:
        found[mime] = _decode_part(data, _charset(part))
    for child in part.get("parts") or []:
        _bodies(child, found)


def message_body_text(payload: dict[str, Any], *, max_chars: int) -> str:
    """The message's text/plain body, else its text/html body stripped to text."""
    found: dict[str, str] = {}
    _bodies(payload, found)
    if found.get("text/plain", "").strip():
        return tidy_text(found["text/plain"], max_chars=max_chars)
    return tidy_text(html_to_text(found.get("text/html", "")), max_chars=max_chars)


def _headers(payload: dict[str, Any]) -> dict[str, str]:
    return {h.get("name", "").lower(): h.get("value", "") for h in payload.get("headers") or []}


def _received_at(message: dict[str, Any], headers: dict[str, str]) -> datetime:
    internal = message.get("internalDate")
    if internal and str(internal).isdigit():
        return datetime.fromtimestamp(int(internal) / 1000, tz=UTC)
    try:
        return email.utils.parsedate_to_datetime(headers.get("date", "")).astimezone(UTC)
    except (TypeError, ValueError):
        return datetime.now(UTC)


class _Fetcher:
    def __init__(self, *, service: Any, filters: dict, limits: FetchLimits, now: datetime) -> None:
        self.service = service
        self.users = service.users()
        self.filters = filters
        self.limits = limits
        self.now = now
        self.label_names: dict[str, str] = {}
        self.label_ids: list[str] = []
        self.window = date_window(filters=filters, now=now, lookback_days=limits.lookback_days)
        self.date_from, self.date_to = self.window.date_from, self.window.date_to

    def resolve_labels(self) -> None:
        """Map label names (or ids) of the filter to ids, and every id to its name for the output."""
        labels = self.users.labels().list(userId="me").execute().get("labels", [])
        self.label_names = {label["id"]: label.get("name", label["id"]) for label in labels}
        by_name = {name.lower(): label_id for label_id, name in self.label_names.items()}
        for wanted in self.filters["labels"]:
            label_id = wanted if wanted in self.label_names else by_name.get(wanted.lower())
            if label_id is None:
                raise ConnectorError(
                    ConnectorErrorCode.FILTER_INVALID,
                    f"filter_config.labels: Gmail has no label '{wanted}'.",
                    status=400,
                    fields={"filter_config.labels": [f"Unknown Gmail label '{wanted}'."]},
                )
            self.label_ids.append(label_id)

    def full_list(self) -> FetchResult:
        history_id = str(self.users.getProfile(userId="me").execute()["historyId"])
        query = gmail_query(senders=self.filters["senders"], date_from=self.window.start.date(), date_to=self.date_to)
        ids: list[str] = []
        page_token = None
        for _ in range(self.limits.max_pages):
            page = (
                self.users.messages()
                .list(
                    userId="me",
                    q=query or None,
                    labelIds=self.label_ids or None,
                    maxResults=min(PAGE_SIZE, self.limits.max_messages - len(ids)),
                    pageToken=page_token,
                )
                .execute()
            )
            ids.extend(item["id"] for item in page.get("messages", []) if item["id"] not in ids)
            page_token = page.get("nextPageToken")
            if not page_token or len(ids) >= self.limits.max_messages:
                break
        messages = [m for m in (self.get(message_id) for message_id in ids[: self.limits.max_messages]) if m]
        return FetchResult(messages=messages, cursor={"history_id": history_id})

    def since(self, history_id: str) -> FetchResult | None:
        """Messages added after ``history_id``; ``None`` when Gmail no longer has that history."""
        ids: list[str] = []
        cursor = history_id
        page_token = None
        for _ in range(self.limits.max_pages):
            try:
                page = (
                    self.users.history()
                    .list(
                        userId="me",
                        startHistoryId=history_id,
                        historyTypes="messageAdded",
                        labelId=self.label_ids[0] if len(self.label_ids) == 1 else None,
                        maxResults=PAGE_SIZE,
                        pageToken=page_token,
                    )
                    .execute()
                )
            except HttpError as exc:
                if exc.resp.status == 404:
                    return None
                raise
            full = False
            for record in page.get("history", []):
                added = [a["message"]["id"] for a in record.get("messagesAdded", []) if a["message"]["id"] not in ids]
                # Stop before a record that would overflow the bound; the next run resumes after the last one taken.
                if ids and len(ids) + len(added) > self.limits.max_messages:
                    full = True
                    break
                ids.extend(added)
                cursor = str(record["id"])
            if full:
                break
            page_token = page.get("nextPageToken")
            if not page_token:
                cursor = str(page.get("historyId") or cursor)
                break
        messages = [m for m in (self.get(message_id, check_filters=True) for message_id in ids) if m]
        return FetchResult(messages=messages, cursor={"history_id": cursor})

    def get(self, message_id: str, *, check_filters: bool = False) -> ConnectorMessage | None:
        try:
            message = self.users.messages().get(userId="me", id=message_id, format="full").execute()
        except HttpError as exc:
            if exc.resp.status == 404:  # deleted since it was listed
                return None
            raise
        label_ids = message.get("labelIds") or []
        payload = message.get("payload") or {}
        headers = _headers(payload)
        received_at = _received_at(message, headers)
        sender = headers.get("from", "")
        if check_filters and not self._matches(label_ids=label_ids, sender=sender, received_at=received_at):
            return None
        return ConnectorMessage(
            id=message["id"],
            provider=PROVIDER,
            subject=headers.get("subject", ""),
            sender=sender,
            body_text=message_body_text(payload, max_chars=self.limits.max_body_chars),
            received_at=received_at,
            labels=tuple(self.label_names.get(label_id, label_id) for label_id in label_ids),
            web_link=f"https://mail.google.com/mail/u/0/#all/{message['id']}",
        )

    def _matches(self, *, label_ids: list[str], sender: str, received_at: datetime) -> bool:
        if _HIDDEN_LABELS & set(label_ids) or not set(self.label_ids) <= set(label_ids):
            return False
        if self.date_from and received_at.date() < self.date_from:
            return False
        if self.date_to and received_at.date() > self.date_to:
            return False
        return sender_matches(sender, self.filters["senders"])


def gmail_fetch(
    *,
    session: ProviderSession,
    api_base_url: str,
    filters: dict,
    cursor: dict | None,
    limits: FetchLimits,
    now: datetime,
) -> FetchResult:
    """Messages for an already validated filter; see the module docstring for the cursor."""
    fetcher = _Fetcher(
        service=gmail_service(session=session, api_base_url=api_base_url), filters=filters, limits=limits, now=now
    )
    try:
        fetcher.resolve_labels()
        history_id = (cursor or {}).get("history_id")
        result = None
        if isinstance(history_id, (str, int)) and str(history_id).isdigit():
            result = fetcher.since(str(history_id))
        if result is None:
            result = fetcher.full_list()
    except HttpError as exc:
        raise ConnectorError(
            ConnectorErrorCode.PROVIDER_REQUEST_FAILED,
            f"Gmail refused the request (HTTP {exc.resp.status}).",
            extra={"provider": PROVIDER},
        ) from None
    result.messages.sort(key=lambda message: message.received_at)
    return result
