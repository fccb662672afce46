"""A loopback fake of Google's and Microsoft's OAuth token endpoints, the Gmail API and Graph.

A real HTTP server in a thread: the project's real clients (httpx, google-api-python-client)
talk to it, so only what lies outside the project is faked. It keeps mailboxes in memory,
checks PKCE and bearer tokens like the real services, rotates refresh tokens, records every
request, and can be scripted to fail: ``fail(path_prefix, [(status, headers, body), ...])``
answers the next requests under that prefix with those responses, in order.

Routes: ``/google/authorize|token``, ``/gmail/v1/users/me/...``, ``/ms/<tenant>/oauth2/v2.0/...``,
``/graph/v1.0/...``. Unknown routes answer 404 and are listed in ``unknown``.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from apps.core.testing.loopback_http import LoopbackHttpServer

_counter = itertools.count(1)


def b64url(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def gmail_message(
    *,
    message_id: str,
    sender: str,
    subject: str,
    plain: str | None = None,
    html: str | None = None,
    labels: tuple[str, ...] = ("INBOX",),
    received: datetime,
    attachment: bool = False,
    charset: str = "utf-8",
) -> dict[str, Any]:
    """A Gmail ``format=full`` message with a realistic MIME tree (bodies base64url-encoded)."""
    headers = [
        {"name": "From", "value": sender},
        {"name": "To", "value": "me@example.com"},
        {"name": "Subject", "value": subject},
        {"name": "Date", "value": received.strftime("%a, %d %b %Y %H:%M:%S +0000")},
    ]

    def text_part(mime: str, text: str) -> dict[str, Any]:
        raw = text.encode(charset)
        return {
            "partId": "",
            "mimeType": mime,
            "filename": "",
            "headers": [{"name": "Content-Type", "value": f'{mime}; charset="{charset}"'}],
            "body": {"size": len(raw), "data": base64.urlsafe_b64encode(raw).decode().rstrip("=")},
        }

    alternatives = [p for p in (plain and text_part("text/plain", plain), html and text_part("text/html", html)) if p]
    if len(alternatives) == 1 and not attachment:
        payload = {**alternatives[0], "headers": headers + alternatives[0]["headers"]}
    else:
        body: dict[str, Any] = {"mimeType": "multipart/alternative", "filename": "", "headers": [], "body": {"size": 0}}
        body["parts"] = alternatives
        parts = [body]
        if attachment:
            parts.append(
                {
                    "mimeType": "text/plain",
                    "filename": "notes.txt",
                    "headers": [{"name": "Content-Disposition", "value": 'attachment; filename="notes.txt"'}],
                    "body": {"size": 10, "data": b64url("ATTACHMENT")},
                }
            )
        mime = "multipart/mixed" if attachment else "multipart/alternative"
        payload = {"mimeType": mime, "filename": "", "headers": headers, "body": {"size": 0}, "parts": parts}
    return {
        "id": message_id,
        "threadId": f"t-{message_id}",
        "labelIds": list(labels),
        "snippet": (plain or html or "")[:50],
        "historyId": "0",
        "internalDate": str(int(received.timestamp() * 1000)),
        "sizeEstimate": 1000,
        "payload": payload,
    }


@dataclass
class Grant:
    provider: str  # "google" or "microsoft"
    refresh_token: str
    access_token: str


@dataclass
class FakeState:
    codes: dict[str, dict[str, str]] = field(default_factory=dict)  # code -> {challenge, family}
    grants: list[Grant] = field(default_factory=list)
    valid_access: set[str] = field(default_factory=set)
    # Gmail
    gmail_labels: list[dict[str, str]] = field(
        default_factory=lambda: [
            {"id": "INBOX", "name": "INBOX", "type": "system"},
            {"id": "SPAM", "name": "SPAM", "type": "system"},
            {"id": "Label_7", "name": "Clients", "type": "user"},
        ]
    )
    gmail_messages: list[dict[str, Any]] = field(default_factory=list)  # newest last
    gmail_history: list[dict[str, Any]] = field(default_factory=list)  # {"id": n, "message_id": ...}
    gmail_history_id: int = 1000
    gmail_history_floor: int = 0  # startHistoryId below this answers 404
    # Graph
    outlook_folders: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {"inbox": []})
    delta_tokens: dict[str, tuple[str, int]] = field(default_factory=dict)  # token -> (folder, count seen)
    chats: list[dict[str, Any]] = field(default_factory=list)
    chat_messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    teams: list[dict[str, Any]] = field(default_factory=list)  # joined teams {id, displayName}
    channels: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # team id -> channels
    channel_messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # "team/channel" -> messages


class FakeProviders(LoopbackHttpServer):
    def __init__(self) -> None:
        self.state = FakeState()
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.unknown: list[str] = []
        self.scripted: list[tuple[str, list[tuple[int, dict[str, str], Any]]]] = []
        self.token_delay = 0.0  # seconds the token endpoint takes (to make concurrent refreshes overlap)
        self.refresh_error: str | None = None  # e.g. "invalid_grant": refreshes are refused
        self.rotate_refresh_tokens = True
        self.granted_scope: str | None = None  # what the user left selected on the consent page
        self.delta_rounds: dict[str, tuple[str, list[dict[str, Any]], int]] = {}
        self._serve(self._handler_class())

    # --- test helpers -------------------------------------------------------------------

    def issue_code(self, *, code_challenge: str, family: str) -> str:
        """What the provider does when the user consents: a one-time code bound to the PKCE challenge."""
        code = f"code-{next(_counter)}"
        with self.lock:
            self.state.codes[code] = {"challenge": code_challenge, "family": family}
        return code

    def fail(self, path_prefix: str, responses: list[tuple[int, dict[str, str], Any]]) -> None:
        with self.lock:
            self.scripted.append((path_prefix, list(responses)))

    def expire_access_tokens(self) -> None:
        with self.lock:
            self.state.valid_access.clear()

    def count(self, method: str, path_prefix: str) -> int:
        return sum(1 for r in self.requests if r["method"] == method and r["path"].startswith(path_prefix))

    def requests_to(self, path_prefix: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"].startswith(path_prefix)]

    def add_gmail(self, message: dict[str, Any]) -> None:
        with self.lock:
            self.state.gmail_history_id += 1
            message["historyId"] = str(self.state.gmail_history_id)
            self.state.gmail_messages.append(message)
            self.state.gmail_history.append({"id": self.state.gmail_history_id, "message_id": message["id"]})

    # --- HTTP ------------------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                raw = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(raw)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(raw)

            def _handle(self, method: str) -> None:
                split = urlsplit(self.path)
                split = split._replace(path=unquote(split.path))
                query = {k: v if len(v) > 1 else v[0] for k, v in parse_qs(split.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                raw_body = self.rfile.read(length) if length else b""
                form = {k: v[0] for k, v in parse_qs(raw_body.decode()).items()} if raw_body else {}
                record = {
                    "method": method,
                    "path": split.path,
                    "query": query,
                    "form": form,
                    "headers": dict(self.headers),
                }
                with fake.lock:
                    fake.requests.append(record)
                    for prefix, responses in fake.scripted:
                        if split.path.startswith(prefix) and responses:
                            status, headers, body = responses.pop(0)
                            break
                    else:
                        status = 0
                if status:
                    self._answer(status, body, headers)
                    return
                try:
                    status, body, headers = fake._route(method, split.path, query, form, dict(self.headers))
                except KeyError as exc:
                    fake.unknown.append(f"{method} {split.path} ({exc})")
                    status, body, headers = 404, {"error": {"code": 404, "message": "Not found"}}, {}
                self._answer(status, body, headers)

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

        return Handler

    def _route(self, method: str, path: str, query: dict, form: dict, headers: dict) -> tuple[int, Any, dict[str, str]]:
        if method == "POST" and path == "/google/token":
            return self._token("google", form)
        if method == "POST" and path == "/google/revoke":
            with self.lock:
                before = len(self.state.grants)
                token = form.get("token")
                self.state.grants = [g for g in self.state.grants if token not in (g.refresh_token, g.access_token)]
            return (200, {}, {}) if len(self.state.grants) < before else (400, {"error": "invalid_token"}, {})
        if method == "POST" and re.fullmatch(r"/ms/[^/]+/oauth2/v2\.0/token", path):
            return self._token("microsoft", form)
        auth = headers.get("Authorization") or headers.get("authorization") or ""
        with self.lock:
            authorized = auth.startswith("Bearer ") and auth[7:] in self.state.valid_access
        if not authorized:
            return 401, {"error": {"code": 401, "message": "Invalid Credentials", "status": "UNAUTHENTICATED"}}, {}
        if path.startswith("/gmail/v1/users/me/"):
            return self._gmail(path.removeprefix("/gmail/v1/users/me/"), query)
        if path.startswith("/graph/v1.0/"):
            return self._graph(path.removeprefix("/graph/v1.0/"), query, headers)
        raise KeyError(path)

    # --- token endpoints ---------------------------------------------------------------------

    def _new_tokens(self, family: str) -> dict[str, Any]:
        n = next(_counter)
        return {"access_token": f"{family}-access-{n}", "refresh_token": f"{family}-refresh-{n}"}

    def _token(self, family: str, form: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        if self.token_delay:
            time.sleep(self.token_delay)
        if form.get("client_id") != f"{family}-client-id" or form.get("client_secret") != f"{family}-client-secret":
            return 401, {"error": "invalid_client"}, {}
        with self.lock:
            if form.get("grant_type") == "authorization_code":
                issued = self.state.codes.pop(form.get("code", ""), None)
                verifier = form.get("code_verifier", "")
                challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
                if issued is None or issued["family"] != family or issued["challenge"] != challenge:
                    return 400, {"error": "invalid_grant", "error_description": "Bad code or code_verifier."}, {}
                tokens = self._new_tokens(family)
                self.state.grants.append(Grant(family, tokens["refresh_token"], tokens["access_token"]))
            elif form.get("grant_type") == "refresh_token":
                grant = next((g for g in self.state.grants if g.refresh_token == form.get("refresh_token")), None)
                if self.refresh_error or grant is None:
                    error = self.refresh_error or "invalid_grant"
                    return 400, {"error": error, "error_description": "Token has been expired or revoked."}, {}
                tokens = self._new_tokens(family)
                grant.access_token = tokens["access_token"]
                if self.rotate_refresh_tokens:
                    grant.refresh_token = tokens["refresh_token"]
                else:
                    tokens.pop("refresh_token")
            else:
                return 400, {"error": "unsupported_grant_type"}, {}
            self.state.valid_access.add(tokens["access_token"])
        scope = self.granted_scope or form.get("scope") or "https://www.googleapis.com/auth/gmail.readonly openid email"
        return 200, {**tokens, "expires_in": 3599, "token_type": "Bearer", "scope": scope}, {}

    # --- Gmail ---------------------------------------------------------------------------------

    def _gmail(self, path: str, query: dict) -> tuple[int, Any, dict[str, str]]:
        state = self.state
        if path == "profile":
            return 200, {"emailAddress": "me@example.com", "historyId": str(state.gmail_history_id)}, {}
        if path == "labels":
            return 200, {"labels": state.gmail_labels}, {}
        if path == "messages":
            label_ids = query.get("labelIds") or []
            label_ids = [label_ids] if isinstance(label_ids, str) else label_ids
            newest_first = [
                m
                for m in reversed(state.gmail_messages)
                if set(label_ids) <= set(m["labelIds"])
                and not {"SPAM", "TRASH"} & set(m["labelIds"])
                and _matches_query(m, query.get("q") or "")
            ]
            start = int(query.get("pageToken") or 0)
            size = min(int(query.get("maxResults") or 100), 2)  # small pages, to exercise paging
            page = newest_first[start : start + size]
            body: dict[str, Any] = {
                "messages": [{"id": m["id"], "threadId": m["threadId"]} for m in page],
                "resultSizeEstimate": len(newest_first),
            }
            if start + size < len(newest_first):
                body["nextPageToken"] = str(start + size)
            return 200, body, {}
        if path.startswith("messages/"):
            message_id = path.removeprefix("messages/")
            found = next((m for m in state.gmail_messages if m["id"] == message_id), None)
            if found is None:
                return 404, {"error": {"code": 404, "message": "Requested entity was not found."}}, {}
            return 200, found, {}
        if path == "history":
            start_id = int(query["startHistoryId"])
            if start_id < state.gmail_history_floor:
                return 404, {"error": {"code": 404, "message": "Requested entity was not found."}}, {}
            records = [r for r in state.gmail_history if r["id"] > start_id]
            label = query.get("labelId")
            offset = int(query.get("pageToken") or 0)
            size = int(query.get("maxResults") or 100)
            page = records[offset : offset + size]
            history = []
            for record in page:
                message = next(m for m in state.gmail_messages if m["id"] == record["message_id"])
                if label and label not in message["labelIds"]:
                    continue
                stub = {"id": message["id"], "threadId": message["threadId"], "labelIds": message["labelIds"]}
                history.append({"id": str(record["id"]), "messages": [stub], "messagesAdded": [{"message": stub}]})
            body = {"history": history, "historyId": str(state.gmail_history_id)}
            if offset + size < len(records):
                body["nextPageToken"] = str(offset + size)
            return 200, body, {}
        raise KeyError(path)

    # --- Graph ---------------------------------------------------------------------------------

    @property
    def graph_base(self) -> str:
        return f"{self.url}/graph/v1.0"

    def _graph(self, path: str, query: dict, headers: dict) -> tuple[int, Any, dict[str, str]]:
        match = re.fullmatch(r"me/mailFolders/([^/]+)/messages/delta", path)
        if match:
            return self._delta(match.group(1), query, headers)
        if path == "me/chats":
            return 200, {"value": self.state.chats}, {}
        match = re.fullmatch(r"chats/([^/]+)/messages", path)
        if match:
            return self._chat_messages(match.group(1), query)
        if path == "me/joinedTeams":
            return 200, {"value": self.state.teams}, {}
        match = re.fullmatch(r"teams/([^/]+)/channels", path)
        if match:
            return 200, {"value": self.state.channels.get(match.group(1), [])}, {}
        match = re.fullmatch(r"teams/([^/]+)/channels/([^/]+)/messages/delta", path)
        if match:
            return self._channel_delta(match.group(1), match.group(2), query)
        raise KeyError(path)

    def _channel_delta(self, team_id: str, channel_id: str, query: dict) -> tuple[int, Any, dict[str, str]]:
        """A channel's message delta filtered on lastModifiedDateTime (no $orderby: Graph refuses it)."""
        if "$orderby" in query:
            return 400, {"error": {"code": "BadRequest", "message": "$orderby is not supported."}}, {}
        messages = self.state.channel_messages.get(f"{team_id}/{channel_id}", [])
        since = query.get("$filter", "").removeprefix("lastModifiedDateTime gt ")
        pending = [m for m in messages if not since or m["lastModifiedDateTime"] > since]
        offset = int(query.get("$skiptoken") or 0)
        size = min(int(query.get("$top") or 50), 2)  # small pages, to exercise paging
        body: dict[str, Any] = {"value": pending[offset : offset + size]}
        base = f"{self.graph_base}/teams/{team_id}/channels/{channel_id}/messages/delta"
        if offset + size < len(pending):
            # Graph keeps the round's filter in its skip token; here it travels in the link itself.
            round_filter = quote(query.get("$filter", ""), safe="")
            body["@odata.nextLink"] = f"{base}?$filter={round_filter}&$skiptoken={offset + size}"
        else:
            body["@odata.deltaLink"] = f"{base}?$deltatoken=d{offset + size}"
        return 200, body, {}

    def _delta(self, folder: str, query: dict, headers: dict) -> tuple[int, Any, dict[str, str]]:
        """Graph's message delta: a round of pages (nextLink), then a deltaLink for what comes later."""
        items = self.state.outlook_folders[folder]
        if "$skiptoken" in query:
            round_id, _, offset_text = query["$skiptoken"].partition(":")
            _round_folder, pending, seen = self.delta_rounds[round_id]
            offset = int(offset_text)
        else:
            if "$deltatoken" in query:
                token_folder, seen = self.state.delta_tokens.get(query["$deltatoken"], (None, 0))
                if token_folder != folder:
                    return 410, {"error": {"code": "SyncStateNotFound", "message": "Resync required."}}, {}
                pending = items[seen:]
            else:
                since = query.get("$filter", "").removeprefix("receivedDateTime ge ")
                pending = [m for m in items if not since or m["receivedDateTime"] >= since]
            seen = len(items)
            round_id = f"r{next(_counter)}"
            self.delta_rounds[round_id] = (folder, pending, seen)
            offset = 0
        prefer = re.search(r"odata\.maxpagesize=(\d+)", headers.get("Prefer") or headers.get("prefer") or "")
        size = min(int(prefer.group(1)) if prefer else 10, 3)  # small pages, to exercise paging
        body: dict[str, Any] = {"value": pending[offset : offset + size]}
        base = f"{self.graph_base}/me/mailFolders/{folder}/messages/delta"
        if offset + size < len(pending):
            body["@odata.nextLink"] = f"{base}?$skiptoken={round_id}:{offset + size}"
        else:
            token = f"dt{next(_counter)}"
            self.state.delta_tokens[token] = (folder, seen)
            body["@odata.deltaLink"] = f"{base}?$deltatoken={token}"
        return 200, body, {}

    def _chat_messages(self, chat_id: str, query: dict) -> tuple[int, Any, dict[str, str]]:
        messages = self.state.chat_messages[chat_id]
        since = query.get("$filter", "").removeprefix("lastModifiedDateTime gt ")
        newest_first = sorted(
            (m for m in messages if not since or m["lastModifiedDateTime"] > since),
            key=lambda m: m["lastModifiedDateTime"],
            reverse=True,
        )
        offset = int(query.get("$skiptoken") or 0)
        size = int(query.get("$top") or 50)
        body: dict[str, Any] = {"value": newest_first[offset : offset + size]}
        if offset + size < len(newest_first):
            body["@odata.nextLink"] = f"{self.graph_base}/chats/{chat_id}/messages?$skiptoken={offset + size}"
        return 200, body, {}


def _matches_query(message: dict[str, Any], q: str) -> bool:
    """The part of Gmail's search syntax the client sends: ``{from:a from:b}``, ``after:``, ``before:``."""
    sender = next(h["value"] for h in message["payload"]["headers"] if h["name"] == "From").lower()
    senders = [s.strip('"').lower() for s in re.findall(r'from:("[^"]+"|[^\s}]+)', q)]
    if senders and not any(s in sender for s in senders):
        return False
    received = datetime.fromtimestamp(int(message["internalDate"]) / 1000, tz=UTC)
    for op, day in re.findall(r"(after|before):(\d{4}/\d{2}/\d{2})", q):
        bound = datetime.strptime(day, "%Y/%m/%d").replace(tzinfo=UTC)
        if (op == "after" and received < bound) or (op == "before" and received >= bound):
            return False
    return True


def graph_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
