"""Invitations: an owner or admin invites an address (holding a seat for 7 days); its owner accepts
with that address verified. The last free seat is decided under the team's row lock."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import timedelta
from typing import NamedTuple
from urllib.parse import urlencode

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.utils import timezone

from apps.accounts.email_verification import require_verified_email
from apps.accounts.error_codes import AccountsErrorCode
from apps.accounts.models import User
from apps.core.errors import ApplicationError

from .error_codes import TeamsErrorCode
from .models import Invitation, Membership, Team
from .selectors import membership_in_team, require_managing_role, seat_usage, verified_emails
from .services import entitlement_changed, team_lock

INVITATION_TTL = timedelta(days=7)


class IssuedInvitation(NamedTuple):
    invitation: Invitation
    token: str  # only ever in the e-mail; the database keeps its hash


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invitation_not_found() -> ApplicationError:
    return ApplicationError(TeamsErrorCode.INVITATION_NOT_FOUND, "Invitation not found.", status=404)


def no_free_seat(*, seats: int, seats_used: int) -> ApplicationError:
    return ApplicationError(
        TeamsErrorCode.NO_FREE_SEAT,
        f"The team has no free seat ({seats_used} of {seats} in use); add seats first.",
        status=409,
        extra={"seats": seats, "seats_used": seats_used},
    )


def accept_links(token: str) -> dict[str, str]:
    query = urlencode({"token": token})
    return {
        "desktop": f"{settings.TEAM_INVITATION_DESKTOP_URL}?{query}",
        "browser": f"{settings.TEAM_INVITATION_BROWSER_URL}?{query}",
    }


def _send_invitation_mail(*, invitation_id: uuid.UUID, token: str) -> None:
    invitation = Invitation.objects.select_related("team", "invited_by").get(pk=invitation_id)
    context = {
        "invitation": invitation,
        "team_name": invitation.team.name,
        "inviter": invitation.invited_by.email if invitation.invited_by else "",
        "links": accept_links(token),
    }
    subject = " ".join(render_to_string("teams/email/invitation_subject.txt", context).split())
    body = render_to_string("teams/email/invitation_message.txt", context)
    send_mail(subject, body, None, [invitation.email])


def invitation_create(*, team_id: uuid.UUID, actor: User, email: str, role: str) -> IssuedInvitation:
    """Invite ``email`` to the team with ``role`` (admin or member); a pending invitation to the same
    address is replaced. Refused (409 ``no_free_seat``) when no seat is free or the team is over its seats."""
    membership = membership_in_team(user=actor, team_id=team_id)
    require_managing_role(membership)
    email = User.objects.normalize_email(email).lower()
    with transaction.atomic():
        team = team_lock(team_id=team_id)
        if team.dissolving_at is not None:
            raise ApplicationError(TeamsErrorCode.TEAM_DISSOLVING, "The team is being deleted.", status=409)
        if Membership.objects.filter(team=team, user__email__iexact=email).exists():
            raise ApplicationError(TeamsErrorCode.ALREADY_MEMBER, f"{email} is already a member.", status=409)
        now = timezone.now()
        Invitation.objects.filter(team=team, email=email).pending().update(revoked_at=now, updated_at=now)
        usage = seat_usage(team=team)
        if usage.over_seats or usage.free < 1:
            raise no_free_seat(seats=usage.seats, seats_used=usage.used)
        token = secrets.token_urlsafe(32)
        invitation = Invitation.objects.create(
            team=team,
            email=email,
            role=role,
            invited_by=actor,
            token_hash=token_hash(token),
            expires_at=now + INVITATION_TTL,
        )

        def send_mail_after_commit() -> None:  # named: Django logs a robust callback's failure by its name
            _send_invitation_mail(invitation_id=invitation.pk, token=token)

        # robust: a mail server that fails after the commit is logged, the invitation stands (resend by inviting again).
        transaction.on_commit(send_mail_after_commit, robust=True)
    return IssuedInvitation(invitation=invitation, token=token)


def invitation_revoke(*, team_id: uuid.UUID, actor: User, invitation_id: uuid.UUID) -> None:
    membership = membership_in_team(user=actor, team_id=team_id)
    require_managing_role(membership)
    with transaction.atomic():
        team_lock(team_id=team_id)
        updated = (
            Invitation.objects.filter(team_id=team_id, pk=invitation_id)
            .pending()
            .update(revoked_at=timezone.now(), updated_at=timezone.now())
        )
    if not updated:
        raise invitation_not_found()


def _accept(*, invitation: Invitation, user: User) -> Membership:
    """Turn a pending invitation into a membership, deciding the seat under the team's row lock."""
    with transaction.atomic():
        team: Team = team_lock(team_id=invitation.team_id)
        invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
        if invitation.accepted_at is not None or invitation.revoked_at is not None:
            raise invitation_not_found()
        if invitation.is_expired:
            raise ApplicationError(
                TeamsErrorCode.INVITATION_EXPIRED, "The invitation has expired; ask for a new one.", status=409
            )
        if team.dissolving_at is not None:
            raise ApplicationError(TeamsErrorCode.TEAM_DISSOLVING, "The team is being deleted.", status=409)
        existing = Membership.objects.filter(user=user).first()
        if existing is not None:
            if existing.team_id == team.pk:
                raise ApplicationError(TeamsErrorCode.ALREADY_MEMBER, "You are already a member.", status=409)
            raise ApplicationError(
                TeamsErrorCode.ALREADY_IN_TEAM, "You already belong to a team; leave it first.", status=409
            )
        # The invitation's own hold becomes the member's seat: only the members count here, so a
        # cut below the members plus holds lets the first to accept in and refuses the rest.
        members = Membership.objects.filter(team=team).count()
        if members + 1 > team.seats:
            raise no_free_seat(seats=team.seats, seats_used=members)
        try:
            with transaction.atomic():
                membership = Membership.objects.create(team=team, user=user, role=invitation.role)
        except IntegrityError as exc:  # joined another team at the same moment
            raise ApplicationError(
                TeamsErrorCode.ALREADY_IN_TEAM, "You already belong to a team; leave it first.", status=409
            ) from exc
        invitation.accepted_at = timezone.now()
        invitation.accepted_by = user
        invitation.save(update_fields=["accepted_at", "accepted_by", "updated_at"])
        entitlement_changed(team=team, user_ids=[user.pk])
    return membership


def _require_invited_address_verified(*, invitation: Invitation, user: User) -> None:
    if invitation.email not in verified_emails(user=user):
        require_verified_email(user=user)  # the account's own address unverified: say how to verify it
        raise ApplicationError(
            AccountsErrorCode.EMAIL_NOT_VERIFIED,
            f"This invitation is for {invitation.email}; add and verify that address on your account first.",
            status=403,
            extra={"email": invitation.email},
        )


def invitation_accept(*, invitation_id: uuid.UUID, user: User) -> Membership:
    """Accept an invitation addressed to one of the caller's addresses (it must be verified)."""
    invitation = Invitation.objects.filter(pk=invitation_id).first()
    own_addresses = {user.email.lower(), *verified_emails(user=user)}
    if invitation is None or invitation.email not in own_addresses:
        raise invitation_not_found()
    _require_invited_address_verified(invitation=invitation, user=user)
    return _accept(invitation=invitation, user=user)


def invitation_for_token(token: str) -> Invitation | None:
    return Invitation.objects.select_related("team").filter(token_hash=token_hash(token)).first()


def invitation_accept_by_token(*, token: str, user: User) -> Membership:
    """Accept the invitation of an e-mailed link; the caller must have the invited address verified."""
    invitation = invitation_for_token(token)
    if invitation is None:
        raise invitation_not_found()
    _require_invited_address_verified(invitation=invitation, user=user)
    return _accept(invitation=invitation, user=user)
