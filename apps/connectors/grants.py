"""The lifecycle of an OAuth grant: connect, hand out a valid access token, refresh, disconnect.

The provider's token set lives only in ``OAuthGrant.token_ciphertext`` (Fernet, the user's key).
A refresh runs under ``SELECT … FOR UPDATE`` on the grant row, so concurrent workers refresh a
grant once; the rotated refresh token is saved in that same transaction. A refresh the provider
refuses marks the grant ``needs_reconnect`` (audited) and raises ``grant_needs_reconnect``.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.accounts.keys import decrypt_for_user, encrypt_for_user
from apps.billing.tiers import Feature, require_below_limit
from apps.core.audit import AuditAction, audit_record

from .error_codes import ConnectorErrorCode
from .errors import ConnectorError
from .lock_objects import user_grants_lock
from .models import GrantStatus, OAuthGrant
from .provider_config import provider_config
from .providers import Provider
from .selectors import connected_providers
from .token_endpoint import TokenRequestRefused, TokenSet, token_refresh, token_revoke
from .transport import ProviderSession, RetryPolicy

logger = logging.getLogger(__name__)

# Refresh this long before the provider's expiry, so a token never dies mid-request.
REFRESH_MARGIN = timedelta(seconds=60)


def grant_tokens(*, grant: OAuthGrant) -> TokenSet:
    """The decrypted token set; only this app's services call it."""
    return TokenSet.from_json(decrypt_for_user(user_id=grant.user_id, token=bytes(grant.token_ciphertext)))


def _store_tokens(grant: OAuthGrant, tokens: TokenSet, *, now: datetime) -> None:
    grant.token_ciphertext = encrypt_for_user(user_id=grant.user_id, plaintext=tokens.to_json())
    grant.access_expires_at = tokens.expires_at
    grant.scopes = tokens.scopes
    grant.last_refreshed_at = now


def _require_usable(grant: OAuthGrant) -> None:
    if grant.status == GrantStatus.NEEDS_RECONNECT:
        raise ConnectorError(
            ConnectorErrorCode.GRANT_NEEDS_RECONNECT,
            f"The {grant.provider} connection needs to be authorized again ({grant.status_reason}).",
            extra={"provider": grant.provider},
        )
    if grant.status != GrantStatus.ACTIVE:
        raise ConnectorError(
            ConnectorErrorCode.GRANT_MISSING,
            f"{grant.provider} is not connected.",
            extra={"provider": grant.provider},
        )


def provider_gate_check(*, user: Any, provider: Provider | str) -> None:
    """Raise the 403 limit error when connecting ``provider`` would be one provider too many.

    Reconnecting a provider that is still connected (active or needs_reconnect) is not a new one.
    """
    connected = connected_providers(user=user)
    if str(provider) not in connected:
        require_below_limit(user, Feature.PROVIDERS, current=len(connected))


def grant_connect(*, user: Any, provider: Provider, tokens: TokenSet) -> OAuthGrant:
    """Store a freshly authorized token set as the user's grant for ``provider`` (insert or update)."""
    now = timezone.now()
    with transaction.atomic():
        user_grants_lock(user_id=user.id)  # re-check the gate with no concurrent connect in between
        provider_gate_check(user=user, provider=provider)
        grant = OAuthGrant.objects.select_for_update().filter(user=user, provider=provider).first()
        reconnect = grant is not None
        if grant is None:
            grant = OAuthGrant(user=user, provider=provider)
        grant.status = GrantStatus.ACTIVE
        grant.status_reason = ""
        _store_tokens(grant, tokens, now=now)
        grant.save()
        audit_record(
            action=AuditAction.GRANT_CONNECTED,
            actor=user,
            target=grant,
            subject_user=user,
            data={"provider": str(provider), "reconnect": reconnect, "scopes": tokens.scopes},
        )
    logger.info("grant connected", extra={"provider": str(provider), "grant_id": str(grant.id)})
    return grant


def _mark_needs_reconnect(grant: OAuthGrant, *, reason: str, actor: Any | None) -> None:
    grant.status = GrantStatus.NEEDS_RECONNECT
    grant.status_reason = reason[:255]
    grant.save(update_fields=["status", "status_reason", "updated_at"])
    audit_record(
        action=AuditAction.GRANT_NEEDS_RECONNECT,
        actor=actor,
        target=grant,
        subject_user=grant.user,
        data={"provider": grant.provider, "reason": grant.status_reason},
    )


def grant_mark_needs_reconnect(*, grant: OAuthGrant, reason: str, actor: Any | None = None) -> OAuthGrant:
    """Flag an active grant so the user is asked to authorize again (admin action, refused tokens)."""
    with transaction.atomic():
        locked = OAuthGrant.objects.select_for_update().select_related("user").get(pk=grant.pk)
        if locked.status == GrantStatus.ACTIVE:
            _mark_needs_reconnect(locked, reason=reason, actor=actor)
    grant.refresh_from_db()
    return grant


def _token_is_usable(tokens: TokenSet, *, rejected: str | None, now: datetime) -> bool:
    if rejected is not None and tokens.access_token == rejected:
        return False
    return tokens.expires_at is None or tokens.expires_at > now + REFRESH_MARGIN


def _refresh_locked(*, grant: OAuthGrant, rejected: str | None, force: bool) -> TokenSet:
    """Refresh under the grant's row lock unless another worker already did; see the module doc."""
    config = provider_config(grant.provider)
    refused_reason = ""
    fresh: TokenSet | None = None
    with transaction.atomic():
        locked = OAuthGrant.objects.select_for_update().select_related("user").get(pk=grant.pk)
        _require_usable(locked)
        tokens = grant_tokens(grant=locked)
        now = timezone.now()
        if not force and _token_is_usable(tokens, rejected=rejected, now=now):
            fresh = tokens  # refreshed by another worker while we waited for the lock
        elif not tokens.refresh_token:
            refused_reason = "The provider gave no refresh token; authorize again."
        else:
            try:
                with ProviderSession(provider=grant.provider) as session:
                    fresh = token_refresh(config=config, session=session, refresh_token=tokens.refresh_token)
            except TokenRequestRefused as exc:
                refused_reason = f"The provider refused the refresh ({exc.error})."
            else:
                _store_tokens(locked, fresh, now=now)
                locked.save(
                    update_fields=["token_ciphertext", "access_expires_at", "scopes", "last_refreshed_at", "updated_at"]
                )
        if refused_reason:
            # Committed with the transaction (the raise comes after it), so the state sticks.
            _mark_needs_reconnect(locked, reason=refused_reason, actor=None)
    grant.refresh_from_db()
    if fresh is None:
        _require_usable(grant)  # raises grant_needs_reconnect
        raise AssertionError("unreachable: a refused refresh leaves the grant needing a reconnect")
    return fresh


def grant_access_token(*, grant: OAuthGrant, rejected: str | None = None) -> str:
    """A valid access token for ``grant``, refreshed when expired or about to expire.

    ``rejected`` names a token the provider has just answered 401 to: it is refreshed even if
    its expiry says otherwise (unless another worker has replaced it meanwhile).
    """
    _require_usable(grant)
    tokens = grant_tokens(grant=grant)
    if _token_is_usable(tokens, rejected=rejected, now=timezone.now()):
        return tokens.access_token
    return _refresh_locked(grant=grant, rejected=rejected, force=False).access_token


def grant_refresh(*, grant: OAuthGrant) -> OAuthGrant:
    """Refresh now, whatever the expiry (the ``POST oauth/{provider}/refresh`` door)."""
    _refresh_locked(grant=grant, rejected=None, force=True)
    return grant


def _revoke_at_provider(*, provider: str, refresh_token: str) -> None:
    """Best effort, after commit: the grant is already revoked here whatever the provider answers."""
    try:
        config = provider_config(provider)
        policy = RetryPolicy(max_retries=0, backoff_seconds=0.0, retry_after_max_seconds=0.0)
        with ProviderSession(provider=provider, policy=policy) as session:
            revoked = token_revoke(config=config, session=session, token=refresh_token)
    except ConnectorError as exc:
        revoked = False
        logger.warning("grant revocation at the provider failed", extra={"provider": provider, "code": exc.code})
    logger.info("grant disconnected", extra={"provider": provider, "revoked_at_provider": revoked})


def grant_disconnect(*, grant: OAuthGrant, actor: Any) -> OAuthGrant:
    """Revoke the grant: its tokens are erased, it stops counting against the providers limit, and
    (after commit) the provider is asked to revoke the refresh token where it offers that."""
    with transaction.atomic():
        locked = OAuthGrant.objects.select_for_update().get(pk=grant.pk)
        if locked.status == GrantStatus.REVOKED:
            raise ConnectorError(ConnectorErrorCode.GRANT_MISSING, f"{locked.provider} is not connected.")
        refresh_token = grant_tokens(grant=locked).refresh_token
        locked.status = GrantStatus.REVOKED
        locked.status_reason = "Disconnected by the user."
        locked.token_ciphertext = b""
        locked.access_expires_at = None
        locked.save(update_fields=["status", "status_reason", "token_ciphertext", "access_expires_at", "updated_at"])
        audit_record(
            action=AuditAction.GRANT_REVOKED,
            actor=actor,
            target=locked,
            subject_user=locked.user,
            data={"provider": locked.provider},
        )
        if refresh_token:
            provider = locked.provider
            transaction.on_commit(lambda: _revoke_at_provider(provider=provider, refresh_token=refresh_token))
    grant.refresh_from_db()
    return grant
