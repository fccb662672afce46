"""Reads of teams: the caller's team and role, members, seat usage, invitations."""

from __future__ import annotations

import uuid
from typing import NamedTuple

from allauth.account.models import EmailAddress
from django.db.models import QuerySet

from apps.accounts.models import User
from apps.core.errors import ApplicationError

from .error_codes import TeamsErrorCode
from .models import MANAGING_ROLES, Invitation, Membership, Team, TeamRole


class SeatUsage(NamedTuple):
    seats: int
    members: int
    pending_invitations: int

    @property
    def used(self) -> int:
        """Members plus the seats pending invitations hold."""
        return self.members + self.pending_invitations

    @property
    def free(self) -> int:
        return max(0, self.seats - self.used)

    @property
    def over_seats(self) -> bool:
        """More members than seats (the subscription was cut): invitations are refused, nobody removed."""
        return self.members > self.seats


def team_not_found() -> ApplicationError:
    return ApplicationError(TeamsErrorCode.TEAM_NOT_FOUND, "Team not found.", status=404)


def membership_for_user(*, user: User) -> Membership | None:
    return Membership.objects.select_related("team").filter(user=user).first()


def team_for_user(*, user: User) -> Team | None:
    membership = membership_for_user(user=user)
    return membership.team if membership is not None else None


def team_owned_by(*, user: User) -> Team | None:
    """The team ``user`` owns, if any (an owner must hand it over before leaving or deleting the account)."""
    membership = Membership.objects.select_related("team").filter(user=user, role=TeamRole.OWNER).first()
    return membership.team if membership is not None else None


def team_ownership_blocks_deletion(user: User) -> str | None:
    """Why ``user``'s account cannot be deleted yet: they own a team (ownership is handed over first)."""
    team = team_owned_by(user=user)
    if team is None:
        return None
    return f"You own the team '{team.name}': make another member its owner first."


def team_owner(*, team: Team) -> User | None:
    membership = Membership.objects.select_related("user").filter(team=team, role=TeamRole.OWNER).first()
    return membership.user if membership is not None else None


def membership_in_team(*, user: User, team_id: uuid.UUID) -> Membership:
    """The caller's membership of ``team_id``; another team's id answers 404 like a missing one."""
    membership = membership_for_user(user=user)
    if membership is None or membership.team_id != team_id:
        raise team_not_found()
    return membership


def require_managing_role(membership: Membership) -> None:
    """Raise 403 ``team_role_required`` unless the member is the team's owner or an admin."""
    if membership.role not in MANAGING_ROLES:
        raise ApplicationError(
            TeamsErrorCode.TEAM_ROLE_REQUIRED,
            "Only the team's owner or an admin can do this.",
            status=403,
            extra={"role": membership.role, "required_roles": sorted(MANAGING_ROLES)},
        )


def seat_usage(*, team: Team) -> SeatUsage:
    return SeatUsage(
        seats=team.seats,
        members=Membership.objects.filter(team=team).count(),
        pending_invitations=Invitation.objects.filter(team=team).pending().count(),
    )


def team_members(*, team: Team) -> QuerySet[Membership]:
    return Membership.objects.filter(team=team).select_related("user").order_by("created_at", "id")


def team_managers(*, team: Team) -> QuerySet[Membership]:
    """The owner and admins (one of them pays the team's seats)."""
    return Membership.objects.filter(team=team, role__in=MANAGING_ROLES).select_related("user")


def team_member_user_ids(*, team: Team) -> list[uuid.UUID]:
    return list(Membership.objects.filter(team=team).values_list("user_id", flat=True))


def team_invitations_pending(*, team: Team) -> QuerySet[Invitation]:
    return Invitation.objects.filter(team=team).pending().order_by("-created_at")


def verified_emails(*, user: User) -> list[str]:
    return [
        email.lower() for email in EmailAddress.objects.filter(user=user, verified=True).values_list("email", flat=True)
    ]


def invitations_for_user(*, user: User) -> QuerySet[Invitation]:
    """Pending invitations addressed to one of the caller's verified addresses."""
    return (
        Invitation.objects.pending()
        .filter(email__in=verified_emails(user=user))
        .select_related("team")
        .order_by("-created_at")
    )
