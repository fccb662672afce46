"""Just-in-time joining by single sign-on: a person signing in through a team's own identity
provider with a verified address in a domain that team has proven joins it as a member, when a seat
is free. Another provider vouching for the same domain (the server's, another team's) joins nobody."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from apps.accounts.models import User

from .identity_provider import team_provider_vouches_for
from .invitations import no_free_seat
from .models import Membership, Team, TeamRole
from .selectors import seat_usage
from .services import entitlement_changed, team_lock


def team_seat_free(*, team: Team) -> bool:
    usage = seat_usage(team=team)
    return team.dissolving_at is None and not usage.over_seats and usage.free > 0


def team_refusing_email(*, email: str, provider_id: str) -> Team | None:
    """The team a sign-in through ``provider_id`` with ``email`` would join but that has no free seat
    (so SSO must not make an account)."""
    team = team_provider_vouches_for(provider_id=provider_id, email=email)
    return team if team is not None and not team_seat_free(team=team) else None


def team_join_by_verified_domain(*, user: User, provider_id: str) -> Membership | None:
    """Join the team whose own provider ``provider_id`` ``user`` just signed in through, when their
    (verified) address is in a domain it proved and they are in no team; 409 ``no_free_seat`` when
    it has none. The seat is decided under the team's row lock."""
    team = team_provider_vouches_for(provider_id=provider_id, email=user.email)
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
