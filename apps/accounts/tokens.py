"""JWT sessions for the desktop client.

Access tokens are short-lived JWTs (simplejwt) that name their session (``fam``). Refresh tokens
are opaque, single-use and rotate: presenting one that was already used revokes its whole
session, which also kills the session's access tokens.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from allauth.account.models import EmailAddress
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, QuerySet
from django.utils import timezone
from rest_framework_simplejwt.tokens import AccessToken

from apps.core.audit import AuditAction, audit_record
from apps.core.compiled_queries import CompiledQuery
from apps.core.errors import ApplicationError

from .error_codes import AccountsErrorCode
from .models import RefreshToken, TokenFamily, User

FAMILY_CLAIM = "fam"


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_at: int  # Unix seconds at which the access token expires


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _issue(*, family: TokenFamily) -> TokenPair:
    access = AccessToken.for_user(family.user)
    access[FAMILY_CLAIM] = str(family.id)
    raw_refresh = secrets.token_urlsafe(48)
    RefreshToken.objects.create(
        family=family,
        token_hash=_hash(raw_refresh),
        expires_at=timezone.now() + timedelta(days=settings.JWT_REFRESH_DAYS),
    )
    return TokenPair(access_token=str(access), refresh_token=raw_refresh, expires_at=int(access["exp"]))


@transaction.atomic
def tokens_issue(*, user: User) -> TokenPair:
    """Open a new session for ``user``."""
    return _issue(family=TokenFamily.objects.create(user=user))


def _invalid() -> ApplicationError:
    return ApplicationError(AccountsErrorCode.REFRESH_TOKEN_INVALID, "The refresh token is not valid.", status=401)


def tokens_refresh(*, refresh_token: str, acting_user: User | None = None) -> TokenPair:
    """Rotate: spend ``refresh_token`` and return a new pair in the same session.

    A second use of the same token is treated as theft: the session is revoked.
    """
    reused = False
    with transaction.atomic():
        token = (
            RefreshToken.objects.select_for_update(of=("self", "family"))
            .select_related("family", "family__user")
            .filter(token_hash=_hash(refresh_token))
            .first()
        )
        if token is None or (acting_user is not None and token.family.user_id != acting_user.id):
            raise _invalid()
        family = token.family
        if token.used_at is not None or family.is_revoked:
            if not family.is_revoked:
                family.revoked_at = timezone.now()
                family.revoked_reason = "refresh_reuse"
                family.save(update_fields=["revoked_at", "revoked_reason", "updated_at"])
                session_revocation_audit(family=family, actor=None, reason="refresh_reuse")
            reused = True
        elif token.is_expired:
            raise ApplicationError(
                AccountsErrorCode.REFRESH_TOKEN_EXPIRED, "The refresh token has expired; log in again.", status=401
            )
        elif not family.user.is_active:
            raise ApplicationError(AccountsErrorCode.ACCOUNT_DISABLED, "This account is disabled.", status=401)
        else:
            token.used_at = timezone.now()
            token.save(update_fields=["used_at", "updated_at"])
            return _issue(family=family)
    # Raised outside the atomic block so that the revocation is committed.
    assert reused
    raise ApplicationError(
        AccountsErrorCode.REFRESH_TOKEN_REUSED,
        "This refresh token was already used; the session has been revoked. Log in again.",
        status=401,
    )


@transaction.atomic
def tokens_revoke(*, user: User, refresh_token: str | None = None, family_id: str | None = None) -> None:
    """Log out: revoke the session named by ``refresh_token`` (or the access token's ``family_id``)."""
    families = TokenFamily.objects.select_for_update().filter(user=user, revoked_at__isnull=True)
    if refresh_token is not None:
        family = families.filter(refresh_tokens__token_hash=_hash(refresh_token)).first()
        if family is None:
            raise _invalid()
    elif family_id is not None:
        family = families.filter(id=family_id).first()
        if family is None:
            return
    else:
        return
    family.revoked_at = timezone.now()
    family.revoked_reason = "logout"
    family.save(update_fields=["revoked_at", "revoked_reason", "updated_at"])
    session_revocation_audit(family=family, actor=user, reason="logout")


def session_revocation_audit(*, family: TokenFamily, actor: User | None, reason: str) -> None:
    """The audit row of one revoked session (``actor`` None: the system, e.g. on refresh-token reuse)."""
    audit_record(
        action=AuditAction.SESSION_REVOKED,
        actor=actor,
        subject_user=family.user,
        target=family,
        data={"reason": reason},
    )


@transaction.atomic
def sessions_revoke_by_staff(*, families: Iterable[TokenFamily], staff: User) -> int:
    """Revoke the given sessions that are still active, one audit row each; return how many."""
    count = 0
    for family in (
        TokenFamily.objects.select_for_update()
        .filter(pk__in=[f.pk for f in families], revoked_at__isnull=True)
        .select_related("user")
    ):
        family.revoked_at = timezone.now()
        family.revoked_reason = "staff"
        family.save(update_fields=["revoked_at", "revoked_reason", "updated_at"])
        session_revocation_audit(family=family, actor=staff, reason="staff")
        count += 1
    return count


@transaction.atomic
def sessions_revoke_for_users(*, user_ids: Iterable[Any], reason: str, actor: User | None) -> int:
    """Revoke every active session of the given users (e.g. their team switched SSO on), audited."""
    count = 0
    for family in (
        TokenFamily.objects.select_for_update()
        .filter(user_id__in=list(user_ids), revoked_at__isnull=True)
        .select_related("user")
    ):
        family.revoked_at = timezone.now()
        family.revoked_reason = reason
        family.save(update_fields=["revoked_at", "revoked_reason", "updated_at"])
        session_revocation_audit(family=family, actor=actor, reason=reason)
        count += 1
    return count


def _active_session_user(user_id: Any, family_id: Any) -> QuerySet[User]:
    return User.objects.filter(
        id=user_id,
        is_active=True,
        token_families__id=family_id,
        token_families__revoked_at__isnull=True,
    ).only("id", "email", "tier", "time_zone", "is_active", "is_staff", "is_superuser")


def _active_session_user_with_email_verified(user_id: Any, family_id: Any) -> QuerySet[User]:
    verified = EmailAddress.objects.filter(user_id=OuterRef("pk"), email__iexact=OuterRef("email"), verified=True)
    return _active_session_user(user_id, family_id).annotate(session_email_verified=Exists(verified))


# Every authenticated request and socket runs this query: compiled once per process.
_ACTIVE_SESSION_USER = CompiledQuery(_active_session_user, user_id=User._meta.pk, family_id=TokenFamily._meta.pk)
# The same check that also answers whether the address is verified (auth/me shows it): one round trip.
_ACTIVE_SESSION_USER_WITH_EMAIL_VERIFIED = CompiledQuery(
    _active_session_user_with_email_verified, user_id=User._meta.pk, family_id=TokenFamily._meta.pk
)


def _active_session_query(with_email_verified: bool) -> CompiledQuery[User]:
    return _ACTIVE_SESSION_USER_WITH_EMAIL_VERIFIED if with_email_verified else _ACTIVE_SESSION_USER


def session_is_active(*, user_id: str, family_id: str | None, with_email_verified: bool = False) -> User | None:
    """The active user owning an unrevoked session, or None (one query; a malformed id raises
    Django's ``ValidationError``, as the ORM does). ``with_email_verified``: the user also carries
    ``session_email_verified``, what ``user_email_verified`` answers, from the same query."""
    if family_id is None:
        return None
    return _active_session_query(with_email_verified).first(user_id=user_id, family_id=family_id)


async def asession_is_active(*, user_id: str, family_id: str | None, with_email_verified: bool = False) -> User | None:
    """``session_is_active`` awaited (on the server's loop, ``CompiledQuery.afirst``)."""
    if family_id is None:
        return None
    return await _active_session_query(with_email_verified).afirst(user_id=user_id, family_id=family_id)


def sessions_active_users(*, sessions: Iterable[tuple[Any, Any]]) -> dict[tuple[str, str], User]:
    """``session_is_active`` for many (user id, session family id) pairs in one query: the active
    user of each unrevoked session, keyed by the pair as strings (a pair missing from the answer is
    revoked, or its user gone or inactive). The ids must be valid UUIDs."""
    pairs = {(str(user_id), str(family_id)) for user_id, family_id in sessions}
    if not pairs:
        return {}
    rows = (
        User.objects.filter(
            id__in={user_id for user_id, _ in pairs},
            is_active=True,
            token_families__id__in={family_id for _, family_id in pairs},
            token_families__revoked_at__isnull=True,
        )
        .annotate(session_family=F("token_families__id"))
        .only("id", "email", "tier", "time_zone", "is_active", "is_staff", "is_superuser")
    )
    found: dict[tuple[str, str], User] = {}
    for user in rows:
        pair = (str(user.id), str(user.session_family))  # the annotation
        if pair in pairs:
            found[pair] = user
    return found
