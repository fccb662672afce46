"""Team writes: create, rename, resize, dissolve; members' roles, removal and ownership transfer.

Every write locks the team row first (then users), so concurrent changes of one team apply one
after another and seat counts are read under the lock.
"""

from __future__ import annotations

import uuid

from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import User
from apps.accounts.tokens import sessions_revoke_for_users
from apps.core.audit import AuditAction, audit_record
from apps.core.errors import ApplicationError, NotFoundError

from .error_codes import TeamsErrorCode
from .models import Invitation, Membership, Team, TeamRole
from .seat_provider import seat_provider, seat_provider_if_registered
from .selectors import membership_in_team, require_managing_role, seat_usage, team_member_user_ids
from .signals import team_entitlement_changed


def _already_in_team() -> ApplicationError:
    return ApplicationError(TeamsErrorCode.ALREADY_IN_TEAM, "You already belong to a team; leave it first.", status=409)


def owner_must_transfer() -> ApplicationError:
    return ApplicationError(
        TeamsErrorCode.OWNER_MUST_TRANSFER,
        "The team's owner must hand ownership to another member first.",
        status=409,
    )


def team_lock(*, team_id: uuid.UUID) -> Team:
    """The team row, locked for the rest of the transaction."""
    return Team.objects.select_for_update().get(pk=team_id)


def entitlement_changed(*, team: Team, user_ids: list[uuid.UUID]) -> None:
    if user_ids:
        team_entitlement_changed.send(sender=Team, team_id=team.pk, user_ids=list(user_ids))


def team_create(*, user: User, name: str) -> Team:
    """A new team owned by ``user`` (who takes its first seat)."""
    if Membership.objects.filter(user=user).exists():
        raise _already_in_team()
    try:
        with transaction.atomic():
            team = Team.objects.create(name=name)
            Membership.objects.create(team=team, user=user, role=TeamRole.OWNER)
            entitlement_changed(team=team, user_ids=[user.pk])
    except IntegrityError as exc:  # a concurrent create or accept for the same user won
        raise _already_in_team() from exc
    team.refresh_from_db()  # billing may have written the owner's paid seats
    return team


def team_update(
    *,
    team_id: uuid.UUID,
    actor: User,
    name: str | None = None,
    seats: int | None = None,
    enforce_sso: bool | None = None,
) -> Team:
    """Rename, change the paid seats (through the seat provider; never below the seats in use), or
    switch ``enforce_sso`` (switching it on ends every member's password sessions)."""
    membership = membership_in_team(user=actor, team_id=team_id)
    require_managing_role(membership)
    with transaction.atomic():
        team = team_lock(team_id=team_id)
        if name is not None and name != team.name:
            team.name = name
            team.save(update_fields=["name", "updated_at"])
        if seats is not None and seats != team.seats:
            usage = seat_usage(team=team)
            if seats < usage.used:
                raise ApplicationError(
                    TeamsErrorCode.SEATS_IN_USE,
                    f"{usage.used} seats are in use (members and pending invitations); remove some first.",
                    status=409,
                    extra={"seats_used": usage.used},
                )
            seat_provider().seats_change(team=team, seats=seats, actor=actor)
            team.refresh_from_db()
        if enforce_sso is not None and enforce_sso != team.enforce_sso:
            team_sso_enforce_set(team=team, enforce=enforce_sso, actor=actor)
    return team


def team_sso_enforce_set(*, team: Team, enforce: bool, actor: User | None) -> Team:
    """Members of a team that enforces SSO sign in only through SSO: switching it on revokes their
    sessions (refresh tokens), so a password session cannot outlive the decision. Team row locked."""
    team.enforce_sso = enforce
    team.save(update_fields=["enforce_sso", "updated_at"])
    audit_record(action=AuditAction.TEAM_SSO_ENFORCED, actor=actor, target=team, data={"enforce_sso": enforce})
    if enforce:
        sessions_revoke_for_users(user_ids=team_member_user_ids(team=team), reason="sso_enforced", actor=actor)
    return team


def password_login_refuse_if_sso_enforced(user: User) -> None:
    """A password-login rule (registered with accounts): members of an enforcing team use SSO."""
    if Membership.objects.filter(user=user, team__enforce_sso=True).exists():
        raise ApplicationError(
            TeamsErrorCode.SSO_REQUIRED,
            "Your team signs in with single sign-on; use SSO instead of a password.",
            status=403,
            extra={"sso_url": reverse("sso-providers")},
        )


def team_dissolve(*, team_id: uuid.UUID, actor: User) -> None:
    """The owner deletes the team: invitations end now, the subscription at the end of its period;
    members keep the team tier until then. A team with no seats in force goes at once."""
    membership = membership_in_team(user=actor, team_id=team_id)
    if membership.role != TeamRole.OWNER:
        raise ApplicationError(TeamsErrorCode.TEAM_ROLE_REQUIRED, "Only the team's owner can delete it.", status=403)
    with transaction.atomic():
        team = team_lock(team_id=team_id)
        Invitation.objects.filter(team=team).pending().update(revoked_at=timezone.now(), updated_at=timezone.now())
        if team.dissolving_at is None:
            team.dissolving_at = timezone.now()
            team.save(update_fields=["dissolving_at", "updated_at"])
        if team.subscribed_seats:
            seat_provider().subscription_end(team=team, actor=actor)
        team.refresh_from_db()
        if not team.is_active:
            team_dissolve_finish(team=team)


def team_dissolve_finish(*, team: Team) -> None:
    """Delete a dissolving team whose seats have run out; its members fall back to their own tier."""
    user_ids = team_member_user_ids(team=team)
    Membership.objects.filter(team=team).delete()
    entitlement_changed(team=team, user_ids=user_ids)
    team.delete()


def _member_in(team: Team, user_id: uuid.UUID) -> Membership:
    target = Membership.objects.select_for_update().select_related("user").filter(team=team, user_id=user_id).first()
    if target is None:
        raise NotFoundError("Member")
    return target


def member_role_set(*, team_id: uuid.UUID, actor: User, user_id: uuid.UUID, role: str) -> Membership:
    """Change a member's role; making someone ``owner`` is the owner handing ownership over."""
    membership = membership_in_team(user=actor, team_id=team_id)
    require_managing_role(membership)
    with transaction.atomic():
        team = team_lock(team_id=team_id)
        target = _member_in(team, user_id)
        if role == TeamRole.OWNER:
            if membership.role != TeamRole.OWNER:
                raise ApplicationError(
                    TeamsErrorCode.TEAM_ROLE_REQUIRED, "Only the owner can hand ownership over.", status=403
                )
            return team_ownership_transfer(team=team, new_owner=target, actor=actor)
        if target.role == TeamRole.OWNER:
            raise owner_must_transfer()
        if target.role != role:
            target.role = role
            target.save(update_fields=["role", "updated_at"])
    return target


def team_ownership_transfer(*, team: Team, new_owner: Membership, actor: User | None) -> Membership:
    """Make ``new_owner`` the owner and the previous owner an admin (audited); the subscription the
    previous owner pays the team with becomes the new owner's to pay (see billing's seat provider).
    Team locked by the caller; a refusal from billing's side leaves the ownership as it was."""
    previous = (
        Membership.objects.select_for_update().select_related("user").filter(team=team, role=TeamRole.OWNER).first()
    )
    if previous is not None and previous.pk == new_owner.pk:
        return new_owner
    if previous is not None:
        # The one-owner constraint holds at every statement: step the old owner down first.
        previous.role = TeamRole.ADMIN
        previous.save(update_fields=["role", "updated_at"])
    new_owner.role = TeamRole.OWNER
    new_owner.save(update_fields=["role", "updated_at"])
    provider = seat_provider_if_registered()
    billing: dict = {}
    if previous is not None and provider is not None:
        billing = provider.billing_contact_transfer(
            team=team, previous_owner=previous.user, new_owner=new_owner.user, actor=actor
        )
    audit_record(
        action=AuditAction.TEAM_OWNERSHIP_TRANSFERRED,
        actor=actor,
        target=team,
        subject_user=new_owner.user,
        data={"from": str(previous.user_id) if previous else None, "to": str(new_owner.user_id), **billing},
    )
    entitlement_changed(team=team, user_ids=[new_owner.user_id, *([previous.user_id] if previous else [])])
    return new_owner


def member_remove(*, team_id: uuid.UUID, actor: User, user_id: uuid.UUID) -> None:
    """An owner or admin removes a member; a member leaves with their own id; the owner must hand over first."""
    membership = membership_in_team(user=actor, team_id=team_id)
    if user_id != actor.pk:
        require_managing_role(membership)
    with transaction.atomic():
        team = team_lock(team_id=team_id)
        target = _member_in(team, user_id)
        if target.role == TeamRole.OWNER:
            raise owner_must_transfer()
        target.delete()
        entitlement_changed(team=team, user_ids=[user_id])
