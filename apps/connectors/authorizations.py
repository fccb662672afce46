"""The OAuth authorization-code flow with PKCE: start (state + verifier), complete (callback).

``state`` is a random 256-bit value bound to the user and provider; only its SHA-256 is stored.
The PKCE verifier stays on the server, encrypted with the user's key. A state is usable once,
within ``CONNECTORS_OAUTH_STATE_TTL`` seconds; it is consumed (committed) before the code is
exchanged, so a replayed or concurrent callback finds it used and changes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.accounts.keys import decrypt_for_user, encrypt_for_user

from .error_codes import ConnectorErrorCode
from .errors import ConnectorError
from .grants import grant_connect, provider_gate_check
from .models import OAuthAuthorization, OAuthGrant
from .provider_config import provider_config, provider_parse, scopes_include
from .providers import Provider
from .token_endpoint import TokenRequestRefused, token_exchange_code
from .transport import ProviderSession

logger = logging.getLogger(__name__)

MAX_STATE_CHARS = 256


def _state_hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def pkce_challenge(verifier: str) -> str:
    """The S256 code challenge of a PKCE verifier (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def oauth_authorization_start(*, user: Any, provider: Provider | str) -> str:
    """Record a pending authorization and return the provider URL the user's browser opens."""
    provider = provider_parse(str(provider))
    config = provider_config(provider)
    provider_gate_check(user=user, provider=provider)
    state = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(64)  # 86 characters of the unreserved set: within RFC 7636 (43 to 128)
    now = timezone.now()
    OAuthAuthorization.objects.filter(user=user, expires_at__lt=now).delete()
    OAuthAuthorization.objects.create(
        user=user,
        provider=provider,
        state_hash=_state_hash(state),
        code_verifier_ciphertext=encrypt_for_user(user_id=user.id, plaintext=verifier),
        expires_at=now + timedelta(seconds=settings.CONNECTORS_OAUTH_STATE_TTL),
    )
    return config.authorization_url(state=state, code_challenge=pkce_challenge(verifier))


def _state_error(code: ConnectorErrorCode, message: str) -> ConnectorError:
    return ConnectorError(code, message, status=400)


def _authorization_consume(*, provider: Provider, state: str, request_user: Any | None) -> OAuthAuthorization:
    """Mark the pending authorization of ``state`` used, or raise why it can't be used."""
    if not state or len(state) > MAX_STATE_CHARS:
        raise _state_error(ConnectorErrorCode.OAUTH_STATE_INVALID, "The authorization state is missing or invalid.")
    with transaction.atomic():
        pending = (
            OAuthAuthorization.objects.select_for_update()
            .select_related("user")
            .filter(state_hash=_state_hash(state))
            .first()
        )
        if pending is None or pending.provider != provider:
            raise _state_error(ConnectorErrorCode.OAUTH_STATE_INVALID, "The authorization state is not valid here.")
        # The callback is a browser redirect without our JWT; if one is sent anyway it must match.
        if request_user is not None and request_user.pk != pending.user_id:
            raise _state_error(ConnectorErrorCode.OAUTH_STATE_INVALID, "The authorization state is not valid here.")
        if pending.consumed_at is not None:
            raise _state_error(
                ConnectorErrorCode.OAUTH_STATE_USED, "This authorization was already completed; start again."
            )
        if pending.expires_at <= timezone.now():
            raise _state_error(ConnectorErrorCode.OAUTH_STATE_EXPIRED, "This authorization has expired; start again.")
        pending.consumed_at = timezone.now()
        pending.save(update_fields=["consumed_at", "updated_at"])
    return pending


def oauth_authorization_complete(
    *,
    provider: Provider | str,
    state: str,
    code: str,
    error: str = "",
    error_description: str = "",
    request_user: Any | None = None,
) -> OAuthGrant:
    """Handle the provider's redirect: check the state, exchange the code, store the grant."""
    provider = provider_parse(str(provider))
    pending = _authorization_consume(provider=provider, state=state, request_user=request_user)
    if error:
        raise ConnectorError(
            ConnectorErrorCode.OAUTH_PROVIDER_ERROR,
            f"{provider.label} did not authorize the connection: {error[:100]}"
            + (f" ({error_description[:200]})" if error_description else ""),
            status=400,
        )
    if not code:
        raise ConnectorError(ConnectorErrorCode.OAUTH_EXCHANGE_FAILED, "The callback carried no code.", status=400)
    config = provider_config(provider)
    verifier = decrypt_for_user(user_id=pending.user_id, token=bytes(pending.code_verifier_ciphertext))
    try:
        with ProviderSession(provider=provider) as session:
            tokens = token_exchange_code(config=config, session=session, code=code, code_verifier=verifier)
    except TokenRequestRefused as exc:
        raise ConnectorError(
            ConnectorErrorCode.OAUTH_EXCHANGE_FAILED,
            f"{provider.label} refused the authorization code ({exc.error}); start again.",
            status=400,
        ) from None
    except ConnectorError as exc:  # unavailable or rate limited: the code is single-use anyway
        raise ConnectorError(
            ConnectorErrorCode.OAUTH_EXCHANGE_FAILED,
            f"{provider.label} could not complete the authorization ({exc.code}); start again.",
            status=400,
        ) from None
    if not scopes_include(tokens.scopes, config.required_scope):
        raise ConnectorError(
            ConnectorErrorCode.OAUTH_SCOPE_MISSING,
            f"{provider.label} was connected without the '{config.required_scope}' permission agents need; "
            "connect again and keep it selected.",
            status=400,
        )
    if not tokens.refresh_token:
        raise ConnectorError(
            ConnectorErrorCode.OAUTH_EXCHANGE_FAILED,
            f"{provider.label} returned no refresh token, so agents could not read while you are away.",
            status=400,
        )
    return grant_connect(user=pending.user, provider=provider, tokens=tokens)
