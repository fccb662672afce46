"""The tier sync: ``user_tier_sync`` is the only writer of ``User.tier`` (from the user's own plan
and their team's); ``team_tiers_sync`` makes a team's members follow its paid seats."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import User
from apps.core.audit import AuditAction, audit_record
from apps.teams.models import MANAGING_ROLES, Team
from apps.teams.seats import team_subscribed_seats_set
from apps.teams.selectors import membership_for_user, team_member_user_ids
from apps.teams.services import team_dissolve_finish, team_lock

from . import tiers
from .models import BillingAccount
from .selectors import effective_tier, entitlement_for_user, seats_cache_key, team_paid_seats
from .signals import tier_changed

logger = logging.getLogger(__name__)


def _announce_tier_change(*, user_id: Any, previous: str, tier: str) -> None:
    logger.info("tier changed", extra={"user_id": str(user_id), "previous_tier": previous, "tier": tier})
    tier_changed.send(sender=User, user_id=user_id, previous=previous, tier=tier)


def user_tier_sync(*, user: User) -> User:
    """Recompute the user's tier from their own subscriptions and their team, and store it.

    The effective tier is the higher of the user's own plan and the team tier while their team has
    seats in force (paid or granted). When the user is one of their team's managers, the team's paid
    seats are refreshed from the subscriptions too, and if that switches the team on or off every
    member's tier follows. Locks the team row first, then the user row (the order every team write
    takes), so concurrent webhooks and membership changes apply one after another; the order events
    arrive in doesn't matter.
    """
    with transaction.atomic():
        membership = membership_for_user(user=user)
        team = team_lock(team_id=membership.team_id) if membership is not None else None
        locked = User.objects.select_for_update().get(pk=user.pk)
        entitlement = entitlement_for_user(user=locked)
        seats = entitlement.seats if entitlement.tier in tiers.PER_SEAT_TIERS else 1
        subscription = entitlement.subscription
        account, _ = BillingAccount.objects.select_for_update().get_or_create(user=locked)
        account.seats = seats
        account.subscription_id = subscription.id if subscription else ""
        account.subscription_status = (subscription.status or "") if subscription else ""
        account.synced_at = timezone.now()
        account.save()
        team_switched = False
        if team is not None and membership is not None and membership.role in MANAGING_ROLES:
            team_switched = team_subscribed_seats_set(team=team, seats=team_paid_seats(team=team))
        tier = effective_tier(own=entitlement.tier, team=team)
        previous = locked.tier
        if previous != tier:
            locked.tier = tier
            locked.save(update_fields=["tier", "updated_at"])
            # The system decided (a webhook, a sync or a team change), so there is no actor.
            audit_record(
                action=AuditAction.TIER_CHANGED,
                actor=None,
                subject_user=locked,
                target=locked,
                data={
                    "from": previous,
                    "to": tier,
                    "seats": seats,
                    "own_tier": entitlement.tier,
                    "team_id": str(team.pk) if team else None,
                },
            )
            transaction.on_commit(partial(_announce_tier_change, user_id=locked.pk, previous=previous, tier=tier))
        transaction.on_commit(partial(cache.delete, seats_cache_key(locked.pk)))
        if team is not None:
            if team.dissolving_at is not None and not team.is_active:
                team_dissolve_finish(team=team)  # its members' tiers follow through teams' signal
            elif team_switched:
                for other in User.objects.filter(pk__in=team_member_user_ids(team=team)).exclude(pk=locked.pk):
                    user_tier_sync(user=other)
    user.tier = locked.tier
    return locked


def team_tiers_sync(*, team_id: Any) -> None:
    """Refresh a team's paid seats from its managers' subscriptions; if the team switched on or off,
    recompute every member's tier."""
    with transaction.atomic():
        team = Team.objects.select_for_update().filter(pk=team_id).first()
        if team is None:
            return
        if team_subscribed_seats_set(team=team, seats=team_paid_seats(team=team)):
            for member in User.objects.filter(pk__in=team_member_user_ids(team=team)):
                user_tier_sync(user=member)
