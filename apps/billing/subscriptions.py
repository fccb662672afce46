"""A user's side of the subscription: their Stripe customer, Checkout and customer-portal sessions,
cancellation, and re-reading a subscription from Stripe into dj-stripe."""

from __future__ import annotations

import stripe
from django.conf import settings
from django.db import transaction
from djstripe.models import Customer, Subscription

from apps.accounts.models import User
from apps.core.errors import ApplicationError, NotFoundError
from apps.teams.error_codes import TeamsErrorCode
from apps.teams.models import Team
from apps.teams.selectors import membership_for_user, require_managing_role, seat_usage
from apps.teams.services import team_create

from . import tiers
from .error_codes import BillingErrorCode
from .selectors import customer_for_user, entitlement_for_user, price_for_tier
from .stripe_client import stripe_api_key, stripe_errors


def customer_get_or_create(*, user: User) -> Customer:
    """The user's Stripe customer, created once and linked as dj-stripe's subscriber."""
    api_key = stripe_api_key()
    with transaction.atomic():
        # Two racing checkouts of one user must not create two customers: serialise on the user.
        User.objects.select_for_update().only("pk").get(pk=user.pk)
        existing = customer_for_user(user=user)
        if existing is not None:
            return existing
        with stripe_errors():
            customer, _ = Customer.get_or_create(subscriber=user, livemode=settings.STRIPE_LIVE_MODE, api_key=api_key)
    return customer


def checkout_session_create(*, user: User, tier: str, seats: int = 1) -> str:
    """Start Stripe Checkout for a paid tier; returns the URL the client opens."""
    api_key = stripe_api_key()
    if tier not in tiers.PAID_TIERS:
        raise ApplicationError(
            BillingErrorCode.PLAN_NOT_AVAILABLE, f"'{tier}' is not a plan that can be bought.", status=400
        )
    if tier not in tiers.PER_SEAT_TIERS and seats != 1:
        raise ApplicationError(
            BillingErrorCode.PLAN_NOT_AVAILABLE,
            f"The {tier} plan is not sold per seat.",
            status=400,
            fields={"seats": ["Only the team plan takes seats."]},
        )
    if entitlement_for_user(user=user).subscription is not None:
        raise ApplicationError(
            BillingErrorCode.ALREADY_SUBSCRIBED,
            "You already have a subscription; change plans in the customer portal.",
            status=409,
        )
    price = price_for_tier(tier=tier)
    if price is None:
        raise ApplicationError(
            BillingErrorCode.PLAN_NOT_AVAILABLE,
            f"The {tier} plan is not set up on this server yet.",
            status=503,
        )
    if tier in tiers.PER_SEAT_TIERS:
        _team_for_checkout(user=user, seats=seats)
    customer = customer_get_or_create(user=user)
    metadata = {"adiuva_user": str(user.pk), tiers.TIER_METADATA_KEY: tier}
    with stripe_errors():
        session = stripe.checkout.Session.create(
            api_key=api_key,
            mode="subscription",
            customer=customer.id,
            client_reference_id=str(user.pk),
            line_items=[{"price": price.id, "quantity": seats}],
            success_url=settings.BILLING_CHECKOUT_SUCCESS_URL,
            cancel_url=settings.BILLING_CHECKOUT_CANCEL_URL,
            metadata=metadata,
            subscription_data={"metadata": metadata},
        )
    return str(session.url)


def _team_for_checkout(*, user: User, seats: int) -> Team:
    """The team the team plan will pay for: the buyer's own (they must manage it and buy at least the
    seats in use), or a new one they own."""
    membership = membership_for_user(user=user)
    if membership is None:
        return team_create(user=user, name=user.email)
    require_managing_role(membership)
    usage = seat_usage(team=membership.team)
    if seats < usage.used:
        raise ApplicationError(
            TeamsErrorCode.SEATS_IN_USE,
            f"{usage.used} seats are in use in your team; buy at least that many.",
            status=409,
            extra={"seats_used": usage.used},
        )
    return membership.team


def portal_session_create(*, user: User) -> str:
    """A Stripe customer-portal link for plan changes, seats and card updates."""
    api_key = stripe_api_key()
    customer = customer_for_user(user=user)
    if customer is None:
        raise ApplicationError(
            BillingErrorCode.NO_CUSTOMER, "There is no billing account yet; subscribe to a plan first.", status=409
        )
    with stripe_errors():
        session = stripe.billing_portal.Session.create(
            api_key=api_key, customer=customer.id, return_url=settings.BILLING_PORTAL_RETURN_URL
        )
    return str(session.url)


def subscription_cancel(*, user: User) -> Subscription:
    """Cancel at the end of the paid period; the tier stays until Stripe ends the subscription."""
    api_key = stripe_api_key()
    subscription = entitlement_for_user(user=user).subscription
    if subscription is None:
        raise NotFoundError("Subscription")
    with stripe_errors():
        data = stripe.Subscription.modify(subscription.id, api_key=api_key, cancel_at_period_end=True)
        return Subscription.sync_from_stripe_data(data, api_key=api_key)


def subscription_refresh(*, subscription_id: str) -> Subscription | None:
    """Re-read one subscription from Stripe into dj-stripe (current state, not an event's copy)."""
    api_key = stripe_api_key()
    try:
        data = Subscription(id=subscription_id).api_retrieve(api_key=api_key)
    except stripe.InvalidRequestError as exc:
        if getattr(exc, "code", None) == "resource_missing":
            return None
        raise
    return Subscription.sync_from_stripe_data(data, api_key=api_key)
