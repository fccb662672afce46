"""Reads of billing state: the user's subscriptions as dj-stripe mirrors them, seats, failed payments."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import QuerySet
from djstripe.models import Customer, Price, Subscription
from djstripe.utils import convert_tstamp

from apps.accounts.models import Tier, User
from apps.teams.models import Team
from apps.teams.selectors import team_managers

from . import tiers
from .models import BillingAccount, PaymentFailure

# A subscription in one of these states grants its tier. past_due keeps it while Stripe retries
# the card (the failed payment is surfaced); canceled/unpaid/incomplete*/paused grant nothing.
GRANTING_STATUSES = frozenset({"active", "trialing", "past_due"})
SEATS_CACHE_SECONDS = 300


def billing_configured() -> bool:
    return bool(settings.STRIPE_SECRET_KEY)


def customer_for_user(*, user: User) -> Customer | None:
    """The user's Stripe customer in the configured mode (dj-stripe's subscriber link)."""
    return Customer.objects.filter(subscriber=user, livemode=settings.STRIPE_LIVE_MODE).first()


def price_for_tier(*, tier: str) -> Price | None:
    """The active local Price of a paid tier (mirrored by ``billing_sync_plans``)."""
    return (
        Price.objects.filter(lookup_key=tiers.price_lookup_key(tier), active=True, livemode=settings.STRIPE_LIVE_MODE)
        .select_related("product")
        .first()
    )


def _item_tier(item: dict[str, Any]) -> str | None:
    """The tier of one subscription item, from its price's lookup key, else our metadata."""
    price = item.get("price") or {}
    if isinstance(price, str):
        local = Price.objects.filter(id=price).first()
        price = local.stripe_data if local else {}
    tier = tiers.tier_for_lookup_key(price.get("lookup_key"))
    if tier is None:
        tier = (price.get("metadata") or {}).get(tiers.TIER_METADATA_KEY)
    return tier if tier in tiers.PAID_TIERS else None


@dataclass(frozen=True)
class Entitlement:
    """What the user's subscriptions grant right now."""

    tier: str
    seats: int
    subscription: Subscription | None


def _items(subscription: Subscription) -> list[dict[str, Any]]:
    items = subscription.stripe_data.get("items") or {}
    return list(items.get("data") or [])


def per_seat_item(subscription: Subscription) -> dict[str, Any] | None:
    """The subscription's item of a per-seat plan (its quantity is the seats), if any."""
    return next((item for item in _items(subscription) if _item_tier(item) in tiers.PER_SEAT_TIERS), None)


def subscription_tier(subscription: Subscription) -> tuple[str, int]:
    """The highest paid tier among the subscription's items and its quantity (seats)."""
    best: str = Tier.FREE
    seats = 1
    for item in _items(subscription):
        tier = _item_tier(item)
        if tier and tiers.tier_rank(tier) > tiers.tier_rank(best):
            best, seats = tier, int(item.get("quantity") or 1)
    return best, seats


def subscriptions_for_user(*, user: User) -> QuerySet[Subscription]:
    return Subscription.objects.filter(customer__subscriber=user, livemode=settings.STRIPE_LIVE_MODE).order_by(
        "-created", "-djstripe_id"
    )


def entitlement_for_user(*, user: User) -> Entitlement:
    """Recompute the tier from the mirrored subscriptions (never from an event payload)."""
    best = Entitlement(tier=Tier.FREE, seats=1, subscription=None)
    for subscription in subscriptions_for_user(user=user):
        if subscription.status not in GRANTING_STATUSES:
            continue
        tier, seats = subscription_tier(subscription)
        if tiers.tier_rank(tier) > tiers.tier_rank(best.tier):
            best = Entitlement(tier=tier, seats=seats, subscription=subscription)
    return best


def team_paid_seats(*, team: Team) -> int:
    """The seats the team plan of the team's owner or an admin pays for (0 when none is in force).

    The payer may hand ownership over and stay an admin; the subscription keeps paying the team.
    """
    seats = 0
    for membership in team_managers(team=team):
        entitlement = entitlement_for_user(user=membership.user)
        if entitlement.tier in tiers.PER_SEAT_TIERS:
            seats = max(seats, entitlement.seats)
    return seats


def team_paying_subscription(*, team: Team) -> Subscription | None:
    """The team-plan subscription that pays the team's seats (the largest, if several)."""
    best: tuple[int, Subscription] | None = None
    for membership in team_managers(team=team):
        entitlement = entitlement_for_user(user=membership.user)
        paying = entitlement.tier in tiers.PER_SEAT_TIERS and entitlement.subscription is not None
        if paying and (best is None or entitlement.seats > best[0]):
            best = (entitlement.seats, entitlement.subscription)
    return best[1] if best else None


def effective_tier(*, own: str, team: Team | None) -> str:
    """The higher of the user's own plan and their team's (while the team has seats in force)."""
    if team is not None and team.is_active and tiers.tier_rank(Tier.TEAM) > tiers.tier_rank(own):
        return Tier.TEAM
    return own


def subscription_current_for_user(*, user: User) -> Subscription | None:
    """The subscription to show: the one granting the tier, else the most recent one."""
    granting = entitlement_for_user(user=user).subscription
    return granting or subscriptions_for_user(user=user).first()


def subscription_period_end(subscription: Subscription) -> datetime | None:
    # Since Stripe API 2025-03-31 the billing period lives on the items, not the subscription.
    ends = [end for item in _items(subscription) if (end := item.get("current_period_end"))]
    stamp = max(ends) if ends else subscription.stripe_data.get("current_period_end")
    return convert_tstamp(stamp) if stamp else None


def seats_cache_key(user_id: Any) -> str:
    return f"billing:seats:{user_id}"


def seats_for_user(*, user: User) -> int:
    """The seats of a per-seat plan (1 otherwise); cached, invalidated by ``user_tier_sync``."""
    if user.tier not in tiers.PER_SEAT_TIERS:
        return 1
    key = seats_cache_key(user.pk)
    seats = cache.get(key)
    if seats is None:
        seats = BillingAccount.objects.filter(user=user).values_list("seats", flat=True).first() or 1
        cache.set(key, seats, SEATS_CACHE_SECONDS)
    return int(seats)


def payment_failures_open(*, user: User) -> QuerySet[PaymentFailure]:
    return PaymentFailure.objects.filter(user=user, resolved_at__isnull=True).order_by("-created_at")
