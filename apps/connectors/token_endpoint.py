"""The OAuth 2.0 token endpoint: exchange an authorization code (PKCE), refresh a grant.

Plain HTTP through ``ProviderSession`` (no bearer; 5xx retried). The token set is what the
grant stores encrypted; it never leaves the server.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from .provider_config import ProviderConfig
from .transport import ProviderSession


class TokenSet(NamedTuple):
    access_token: str
    refresh_token: str
    expires_at: datetime | None
    scopes: list[str]
    token_type: str = "Bearer"

    def to_json(self) -> str:
        return json.dumps(
            {
                "access_token": self.access_token,
                "refresh_token": self.refresh_token,
                "expires_at": self.expires_at.isoformat() if self.expires_at else None,
                "scopes": self.scopes,
                "token_type": self.token_type,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> TokenSet:
        data = json.loads(text)
        expires_at = datetime.fromisoformat(data["expires_at"]) if data.get("expires_at") else None
        return cls(
            access_token=data["access_token"],
            refresh_token=data.get("refresh_token") or "",
            expires_at=expires_at,
            scopes=list(data.get("scopes") or []),
            token_type=data.get("token_type") or "Bearer",
        )


class TokenRequestRefused(Exception):
    """The token endpoint said no (4xx): a bad code, or a refresh token that no longer works."""

    def __init__(self, *, status: int, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.status = status
        self.error = error
        self.description = description


def _token_request(*, config: ProviderConfig, session: ProviderSession, form: dict[str, str]) -> dict[str, Any]:
    form = {"client_id": config.client_id, "client_secret": config.client_secret, **form}
    response = session.send("POST", config.token_url, data=form, headers={"Accept": "application/json"})
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code >= 400 or not isinstance(body, dict) or not body.get("access_token"):
        body = body if isinstance(body, dict) else {}
        raise TokenRequestRefused(
            status=response.status_code,
            error=str(body.get("error") or f"http_{response.status_code}")[:100],
            # The description is the provider's text about our request; it carries no token.
            description=str(body.get("error_description") or "")[:200],
        )
    return body


def _token_set(body: dict[str, Any], *, previous_refresh_token: str, default_scopes: list[str]) -> TokenSet:
    expires_in = body.get("expires_in")
    expires_at = datetime.now(UTC) + timedelta(seconds=int(expires_in)) if expires_in is not None else None
    scope = body.get("scope")
    return TokenSet(
        access_token=str(body["access_token"]),
        # Providers may rotate the refresh token; when they send none the old one stays valid.
        refresh_token=str(body.get("refresh_token") or previous_refresh_token),
        expires_at=expires_at,
        scopes=scope.split() if isinstance(scope, str) and scope else default_scopes,
        token_type=str(body.get("token_type") or "Bearer"),
    )


def token_exchange_code(*, config: ProviderConfig, session: ProviderSession, code: str, code_verifier: str) -> TokenSet:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": config.redirect_uri,
        "code_verifier": code_verifier,
    }
    if config.family == "microsoft":
        form["scope"] = " ".join(config.scopes)
    body = _token_request(config=config, session=session, form=form)
    return _token_set(body, previous_refresh_token="", default_scopes=list(config.scopes))


def token_refresh(*, config: ProviderConfig, session: ProviderSession, refresh_token: str) -> TokenSet:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if config.family == "microsoft":
        form["scope"] = " ".join(config.scopes)
    body = _token_request(config=config, session=session, form=form)
    return _token_set(body, previous_refresh_token=refresh_token, default_scopes=list(config.scopes))


def token_revoke(*, config: ProviderConfig, session: ProviderSession, token: str) -> bool:
    """Ask the provider to revoke a token (and with it the grant); False where it can't or didn't."""
    if not config.revoke_url:
        return False
    response = session.send("POST", config.revoke_url, data={"token": token})
    return response.status_code == 200
