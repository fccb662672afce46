"""A small OpenID Connect identity provider on loopback, for tests.

allauth's real ``openid_connect`` provider talks HTTP to it: discovery, the authorization
endpoint (which signs the person in at once and sends the browser back with a code), the token
endpoint (an ID token for the client) and userinfo. Only the outside party is faked.
"""

from __future__ import annotations

import json
import secrets
import time
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import jwt

from apps.core.testing.loopback_http import LoopbackHttpServer


class FakeOidcProvider(LoopbackHttpServer):
    def __init__(self, *, client_id: str, subject: str, email: str, email_verified: bool = True) -> None:
        self.client_id = client_id
        self.identity = {"sub": subject, "email": email, "email_verified": email_verified}
        self.codes: dict[str, str] = {}  # authorization code → the redirect_uri it was issued for
        self.requests: list[tuple[str, str]] = []
        self.client_secrets: list[str] = []  # the secret each token request authenticated with
        self.discovery_redirect = ""  # when set, discovery answers a redirect there
        self._serve(self._handler_class())

    def configuration(self) -> dict[str, Any]:
        return {
            "issuer": self.url,
            "authorization_endpoint": f"{self.url}/authorize",
            "token_endpoint": f"{self.url}/token",
            "userinfo_endpoint": f"{self.url}/userinfo",
            "jwks_uri": f"{self.url}/jwks",
            "token_endpoint_auth_methods_supported": ["client_secret_post"],
        }

    def authorize(self, query: dict[str, str]) -> str:
        """The browser arrives here; the person is signed in: back to the client with a code."""
        code = secrets.token_urlsafe(16)
        self.codes[code] = query["redirect_uri"]
        return f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query.get('state', '')})}"

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        self.client_secrets.append(form.get("client_secret", ""))
        if form.get("client_id") != self.client_id or self.codes.pop(form.get("code", ""), None) is None:
            return 400, {"error": "invalid_grant"}
        now = int(time.time())
        id_token = jwt.encode(
            {**self.identity, "iss": self.url, "aud": self.client_id, "iat": now, "exp": now + 300},
            "fake-provider-key-only-used-in-tests-0123456789",
            algorithm="HS256",
        )
        return 200, {"access_token": secrets.token_urlsafe(16), "token_type": "Bearer", "id_token": id_token}

    def _handler_class(self):
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _json(self, status: int, body: dict[str, Any]) -> None:
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                provider.requests.append(("GET", url.path))
                if url.path == "/.well-known/openid-configuration" and provider.discovery_redirect:
                    self.send_response(302)
                    self.send_header("Location", provider.discovery_redirect)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif url.path == "/.well-known/openid-configuration":
                    self._json(200, provider.configuration())
                elif url.path == "/authorize":
                    self.send_response(302)
                    self.send_header("Location", provider.authorize(dict(parse_qsl(url.query))))
                    self.end_headers()
                elif url.path == "/userinfo" and self.headers.get("Authorization", "").startswith("Bearer "):
                    self._json(200, provider.identity)
                else:
                    self._json(404, {"error": "not_found"})

            def do_POST(self) -> None:
                url = urlsplit(self.path)
                provider.requests.append(("POST", url.path))
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(parse_qsl(self.rfile.read(length).decode()))
                if url.path == "/token":
                    self._json(*provider.token(form))
                else:
                    self._json(404, {"error": "not_found"})

        return Handler
