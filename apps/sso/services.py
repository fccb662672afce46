"""Single sign-on for the desktop client (team tier).

The browser signs in through allauth (Google, Microsoft or the organisation's OpenID Connect
server); ``sso_code_issue`` then gives the signed-in user a short-lived one-time code, which the
browser hands to the desktop app (``SSO_CLIENT_REDIRECT_URL?code=…``); the app trades it for its
JWT pair with ``sso_code_exchange``. The code travels through the OS, so it is single use, short
lived, and only its hash is stored.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.accounts.email_verification import require_verified_email
from apps.accounts.error_codes import AccountsErrorCode
from apps.accounts.models import User
from apps.accounts.selectors import user_email_verified
from apps.accounts.tokens import TokenPair, tokens_issue
from apps.billing.tiers import Feature, require_feature
from apps.core.errors import ApplicationError
from apps.teams.sso_join import team_join_by_verified_domain

from .error_codes import SsoErrorCode
from .models import SsoCode


def _hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def sso_code_check_allowed(*, user: User) -> None:
    """Raise unless ``user`` may sign in to the desktop app by SSO: the team tier, a verified address."""
    require_feature(user, Feature.SSO)
    require_verified_email(user=user)


@transaction.atomic
def sso_code_issue(*, user: User, provider_id: str = "") -> str:
    """A fresh one-time code for ``user`` (returned once, stored hashed). Signed in through a team's
    own provider (``provider_id``) with a verified address in a domain that team proved, they join
    it first (just in time), when a seat is free."""
    if provider_id and user_email_verified(user=user):
        team_join_by_verified_domain(user=user, provider_id=provider_id)
        user.refresh_from_db(fields=["tier"])
    sso_code_check_allowed(user=user)
    now = timezone.now()
    SsoCode.objects.filter(user=user, expires_at__lt=now).delete()  # spent or stale: nothing to keep
    code = secrets.token_urlsafe(32)
    SsoCode.objects.create(
        user=user, code_hash=_hash(code), expires_at=now + timedelta(seconds=settings.SSO_CODE_TTL_SECONDS)
    )
    return code


def sso_code_exchange(*, code: str) -> TokenPair:
    """Spend ``code`` and open a desktop session for its user."""
    with transaction.atomic():
        row = SsoCode.objects.select_for_update().select_related("user").filter(code_hash=_hash(code)).first()
        if row is None or row.used_at is not None:
            raise ApplicationError(
                SsoErrorCode.SSO_CODE_INVALID, "This sign-in code is not valid or was already used.", status=400
            )
        if row.is_expired:
            raise ApplicationError(
                SsoErrorCode.SSO_CODE_EXPIRED, "This sign-in code has expired; sign in again.", status=400
            )
        if not row.user.is_active:
            raise ApplicationError(AccountsErrorCode.ACCOUNT_DISABLED, "This account is disabled.", status=401)
        # The tier or the address may have changed since the code was issued.
        sso_code_check_allowed(user=row.user)
        row.used_at = timezone.now()
        row.save(update_fields=["used_at", "updated_at"])
        return tokens_issue(user=row.user)


def sso_code_prove_sign_in(user: User, code: str) -> bool:
    """Spend ``code`` as proof that ``user`` just signed in by SSO (to confirm deleting the account):
    True only for this user's unused, unexpired code."""
    with transaction.atomic():
        row = SsoCode.objects.select_for_update().filter(code_hash=_hash(code), user=user, used_at=None).first()
        if row is None or row.is_expired:
            return False
        row.used_at = timezone.now()
        row.save(update_fields=["used_at", "updated_at"])
        return True
