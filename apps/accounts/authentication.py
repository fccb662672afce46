"""DRF authentication by access JWT, refusing tokens whose session was revoked."""

from __future__ import annotations

import threading
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken, TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import Token
from rest_framework_simplejwt.utils import aware_utcnow

from .models import User
from .tokens import FAMILY_CLAIM, asession_is_active, session_is_active


def _session_of(validated_token: Any) -> tuple[Any, Any]:
    """The (user id, session family id) a validated access token claims, or ``InvalidToken``."""
    try:
        return validated_token[api_settings.USER_ID_CLAIM], validated_token.get(FAMILY_CLAIM)
    except KeyError as exc:
        raise InvalidToken("Token contained no recognizable user identification") from exc


def _session_user(user: User | None) -> User:
    if user is None:
        raise AuthenticationFailed("The session is no longer valid; log in again.", code="session_revoked")
    return user


def user_from_access_token(validated_token: Any, *, with_email_verified: bool = False) -> User:
    """Resolve a validated access token to its active user, or raise ``InvalidToken``
    (``with_email_verified``: as ``session_is_active``)."""
    user_id, family_id = _session_of(validated_token)
    try:
        user = session_is_active(user_id=user_id, family_id=family_id, with_email_verified=with_email_verified)
    except DjangoValidationError as exc:  # a forged, malformed UUID
        raise InvalidToken("Token is invalid") from exc
    return _session_user(user)


async def auser_from_access_token(validated_token: Any, *, with_email_verified: bool = False) -> User:
    """``user_from_access_token`` awaited (the session query on the server's loop)."""
    user_id, family_id = _session_of(validated_token)
    try:
        user = await asession_is_active(user_id=user_id, family_id=family_id, with_email_verified=with_email_verified)
    except DjangoValidationError as exc:
        raise InvalidToken("Token is invalid") from exc
    return _session_user(user)


# Validated access tokens by their bytes and the key they were checked with. Checking a token's
# signature and claims again for every request of its 15 minutes was a tenth of the CPU an
# authenticated GET costs; its expiry is checked again on every use, and the session behind it is
# still asked about on every request (revocation is never cached).
_VALIDATED_MAX = 4096
_validated: dict[tuple[bytes, str, str], Token] = {}
_validated_lock = threading.Lock()


def _validated_key(raw_token: bytes) -> tuple[bytes, str, str]:
    return (raw_token, str(api_settings.SIGNING_KEY), str(api_settings.VERIFYING_KEY))


class AccessTokenAuthentication(JWTAuthentication):
    def __init__(self, *args: Any, with_email_verified: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The same checks; the session query also answers ``user.session_email_verified`` (auth/me).
        self.with_email_verified = with_email_verified

    def get_validated_token(self, raw_token: bytes) -> Token:
        key = _validated_key(raw_token)
        token = _validated.get(key)
        if token is not None:
            try:
                token.check_exp(current_time=aware_utcnow())
                return token
            except TokenError:
                with _validated_lock:  # every change under the lock: eviction iterates the dict
                    _validated.pop(key, None)  # expired: the full check below answers why
        token = super().get_validated_token(raw_token)
        with _validated_lock:
            if len(_validated) >= _VALIDATED_MAX:
                _validated.pop(next(iter(_validated)))  # the oldest
            _validated[key] = token
        return token

    async def aauthenticate(self, request: Any) -> tuple[User, Token] | None:
        """``authenticate`` for async views: the same answers and errors, the session query awaited."""
        header = self.get_header(request)
        raw_token = None if header is None else self.get_raw_token(header)
        if raw_token is None:
            return None
        validated_token = self.get_validated_token(raw_token)
        user = await auser_from_access_token(validated_token, with_email_verified=self.with_email_verified)
        return user, validated_token

    # simplejwt annotates get_user with a TypeVar bound to nothing, so no concrete return type matches.
    def get_user(self, validated_token: Any) -> User:  # type: ignore[override]
        return user_from_access_token(validated_token, with_email_verified=self.with_email_verified)
