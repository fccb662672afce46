"""DRF authentication by access JWT, refusing tokens whose session was revoked."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken
from rest_framework_simplejwt.settings import api_settings

from .models import User
from .tokens import FAMILY_CLAIM, session_is_active


def user_from_access_token(validated_token: Any, *, with_email_verified: bool = False) -> User:
    """Resolve a validated access token to its active user, or raise ``InvalidToken``
    (``with_email_verified``: as ``session_is_active``)."""
    try:
        user_id = validated_token[api_settings.USER_ID_CLAIM]
    except KeyError as exc:
        raise InvalidToken("Token contained no recognizable user identification") from exc
    try:
        user = session_is_active(
            user_id=user_id, family_id=validated_token.get(FAMILY_CLAIM), with_email_verified=with_email_verified
        )
    except DjangoValidationError as exc:  # a forged, malformed UUID
        raise InvalidToken("Token is invalid") from exc
    if user is None:
        raise AuthenticationFailed("The session is no longer valid; log in again.", code="session_revoked")
    return user


class AccessTokenAuthentication(JWTAuthentication):
    with_email_verified = False

    # simplejwt annotates get_user with a TypeVar bound to nothing, so no concrete return type matches.
    def get_user(self, validated_token: Any) -> User:  # type: ignore[override]
        return user_from_access_token(validated_token, with_email_verified=self.with_email_verified)


class AccessTokenWithEmailVerifiedAuthentication(AccessTokenAuthentication):
    """The same checks; the session query also answers ``user.session_email_verified`` (auth/me)."""

    with_email_verified = True
