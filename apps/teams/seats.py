"""Seat sources written from outside the team: the paid quantity billing mirrors, and staff grants."""

from __future__ import annotations

import datetime

from django.db import transaction
from django.utils import timezone

from apps.accounts.models import User
from apps.core.audit import AuditAction, audit_record

from .models import Team
from .selectors import team_member_user_ids
from .services import entitlement_changed, team_lock


def team_subscribed_seats_set(*, team: Team, seats: int) -> bool:
    """Store the paid seats (billing calls this with the team plan's quantity, 0 when none is in
    force); returns whether the team's being active changed. The caller recomputes tiers."""
    with transaction.atomic():
        locked = team_lock(team_id=team.pk)
        was_active = locked.is_active
        if locked.subscribed_seats != seats:
            locked.subscribed_seats = seats
            locked.save(update_fields=["subscribed_seats", "updated_at"])
        team.subscribed_seats = seats
        return locked.is_active != was_active


def team_seats_grant(
    *, team: Team, seats: int, until: datetime.date | None, actor: User | None, via: str = "service"
) -> Team:
    """Staff grant ``seats`` without Stripe until ``until`` (inclusive; ``None``: open-ended), audited
    with ``via`` (admin, command, expiry). ``seats=0`` withdraws the grant. Members' tiers follow in
    the same transaction."""
    with transaction.atomic():
        locked = team_lock(team_id=team.pk)
        previous = {
            "seats": locked.granted_seats,
            "until": locked.granted_until.isoformat() if locked.granted_until else None,
        }
        locked.granted_seats = seats
        locked.granted_until = until if seats else None
        locked.save(update_fields=["granted_seats", "granted_until", "updated_at"])
        audit_record(
            action=AuditAction.TEAM_SEATS_GRANTED,
            actor=actor,
            target=locked,
            data={
                "from": previous,
                "seats": seats,
                "until": until.isoformat() if until and seats else None,
                "via": via,
            },
        )
        entitlement_changed(team=locked, user_ids=team_member_user_ids(team=locked))
    return locked


def team_grants_expire(*, today: datetime.date | None = None) -> int:
    """Withdraw the grants whose last day has passed, so members' tiers follow; returns how many."""
    today = today or timezone.localdate()
    expired = list(Team.objects.filter(granted_seats__gt=0, granted_until__lt=today))
    for team in expired:
        team_seats_grant(team=team, seats=0, until=None, actor=None, via="expiry")
    return len(expired)
