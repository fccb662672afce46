"""Just-in-time joining by single sign-on: a person signing in through SSO with a verified address
in a domain a team has proven joins that team as a member, when a seat is free."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from apps.accounts.models import User

from .domains import team_for_verified_domain
from .invitations import no_free_seat
from .models import Membership, Team, TeamRole
from .selectors import seat_usage
from .services import entitlement_changed, team_lock


def team_seat_free(*, team: Team) -> bool:
    usage = seat_usage(team=team)
    return team.dissolving_at is None and not usage.over_seats and usage.free > 0


def team_refusing_email(*, email: str) -> Team | None:
    """The team that proved ``email``'s domain but has no free seat (so SSO must not make an account)."""
    team = team_for_verified_domain(email=email)
    return team if team is not None and not team_seat_free(team=team) else None


def team_join_by_verified_domain(*, user: User) -> Membership | None:
    """Join the team that proved the domain of ``user``'s (verified) address, if they are in no team;
    409 ``no_free_seat`` when it has none. The seat is decided under the team's row lock."""
    team = team_for_verified_domain(email=user.email)
    if team is None or Membership.objects.filter(user=user).exists():
        return None
    with transaction.atomic():
        locked = team_lock(team_id=team.pk)
        if not team_seat_free(team=locked):
            usage = seat_usage(team=locked)
            raise no_free_seat(seats=usage.seats, seats_used=usage.used)
        try:
            with transaction.atomic():
                membership = Membership.objects.create(team=locked, user=user, role=TeamRole.MEMBER)
        except IntegrityError:  # joined a team at the same moment
            return None
        entitlement_changed(team=locked, user_ids=[user.pk])
    return membership
