"""ASGI middleware of the device socket: Origin policy and access-JWT authentication.

The token comes from ``Authorization: Bearer`` (desktop clients can send headers) or, for the
existing client, ``?token=``. The outcome (``AuthOutcome``) lands in the scope (``user``,
``device_auth_failure``, ``device_token_exp``, ``device_token_family``); the consumer accepts and then closes with the
documented code, because a refused handshake cannot carry one. Tokens are never logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from channels.security.websocket import WebsocketDenier
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework_simplejwt.exceptions import AuthenticationFailed, ExpiredTokenError, InvalidToken, TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import AccessToken

from apps.accounts.authentication import user_from_access_token
from apps.accounts.models import TokenFamily, User
from apps.accounts.tokens import FAMILY_CLAIM
from apps.core.origins import origin_allowed

from .close_codes import DeviceCloseCode
from .presence import SessionState, session_state
from .session_checks import session_user
from .socket_db import socket_db


@dataclass(frozen=True)
class AuthOutcome:
    """Who a token belongs to, or the close code that says why it is refused."""

    user: User | None
    failure: DeviceCloseCode | None = None
    token_exp: int = 0
    token_family: str | None = None

    def scope(self) -> dict[str, Any]:
        """What the consumer is handed: a refused token brings no expiry or session of its own."""
        if self.user is None:
            return {"user": None, "device_auth_failure": self.failure}
        return {
            "user": self.user,
            "device_auth_failure": self.failure,
            "device_token_exp": self.token_exp,
            "device_token_family": self.token_family,
        }


def _token_from_scope(scope: dict) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                return credentials.strip()
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
    return values[0] if values else None


def _origin(scope: dict) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"origin":
            return value.decode("latin-1")
    return None


def _decoded(raw_token: str | None) -> AccessToken | AuthOutcome:
    """The token's verified claims, or the refusal if it is missing, expired or forged."""
    if not raw_token:
        return AuthOutcome(None, DeviceCloseCode.UNAUTHENTICATED)
    try:
        return AccessToken(raw_token)  # type: ignore[arg-type]  # simplejwt annotates the encoded string as a Token
    except ExpiredTokenError:
        return AuthOutcome(None, DeviceCloseCode.TOKEN_EXPIRED)
    except TokenError:
        return AuthOutcome(None, DeviceCloseCode.UNAUTHENTICATED)


def _ended(token: AccessToken) -> AuthOutcome:
    """Why a valid token's session is refused: its user deactivated, or the session revoked."""
    state = session_state(user_id=token.get("user_id"), family_id=token.get(FAMILY_CLAIM))
    code = DeviceCloseCode.USER_DEACTIVATED if state is SessionState.DEACTIVATED else DeviceCloseCode.SESSION_REVOKED
    return AuthOutcome(None, code)


def _accepted(user: User, token: AccessToken) -> AuthOutcome:
    return AuthOutcome(user, None, int(token["exp"]), token.get(FAMILY_CLAIM))


def authenticate(raw_token: str | None) -> AuthOutcome:
    """The user of ``raw_token``, or the close code explaining why not."""
    token = _decoded(raw_token)
    if isinstance(token, AuthOutcome):
        return token
    try:
        user = user_from_access_token(token)
    except InvalidToken:
        return AuthOutcome(None, DeviceCloseCode.UNAUTHENTICATED)
    except AuthenticationFailed:
        return _ended(token)
    return _accepted(user, token)


async def authenticate_connecting(raw_token: str | None) -> AuthOutcome:
    """``authenticate`` for a connecting socket: the same outcome, but the session check goes with
    those of the sockets connecting at the same time (``session_checks``) and the token is decoded
    on the event loop (a signature check, no I/O)."""
    token = _decoded(raw_token)
    if isinstance(token, AuthOutcome):
        return token
    try:
        user_id = User._meta.pk.to_python(token[api_settings.USER_ID_CLAIM])
        family_id = token.get(FAMILY_CLAIM)
        family_id = TokenFamily._meta.pk.to_python(family_id) if family_id is not None else None
    except (KeyError, DjangoValidationError):  # no user claim, or a forged, malformed id
        return AuthOutcome(None, DeviceCloseCode.UNAUTHENTICATED)
    user = None
    if family_id is not None:
        user = await session_user(user_id=str(user_id), family_id=str(family_id))
    if user is None:
        return await socket_db(_ended)(token)
    return _accepted(user, token)


class DeviceSocketAuthMiddleware:
    def __init__(self, inner) -> None:
        self.inner = inner

    async def __call__(self, scope, receive, send):
        if not origin_allowed(_origin(scope)):
            return await WebsocketDenier()(scope, receive, send)
        outcome = await authenticate_connecting(_token_from_scope(scope))
        return await self.inner({**scope, **outcome.scope()}, receive, send)
