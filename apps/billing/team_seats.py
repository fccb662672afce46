"""Billing's side of teams: the seat provider teams calls (the Stripe quantity, prorated; the end of
the subscription) and the receiver that recomputes tiers when members or seats change."""

from __future__ import annotations

from typing import Any

import stripe
from djstripe.models import Customer, Subscription
from djstripe.settings import djstripe_settings

from apps.accounts.models import User
from apps.core.errors import ApplicationError
from apps.teams.models import Team
from apps.teams.seat_provider import seat_provider_register
from apps.teams.signals import team_entitlement_changed

from .error_codes import BillingErrorCode
from .selectors import customer_for_user, per_seat_item, team_paying_subscription
from .stripe_client import stripe_api_key, stripe_errors
from .tier_sync import team_tiers_sync, user_tier_sync


def _paying_subscription(team: Team) -> Subscription:
    subscription = team_paying_subscription(team=team)
    if subscription is None:
        raise ApplicationError(
            BillingErrorCode.NO_SUBSCRIPTION,
            "The team has no paid subscription (its seats may be granted); start one with "
            "POST /api/v1/billing/checkout {tier: team, seats}.",
            status=409,
        )
    return subscription


def _sync_payer(subscription: Subscription) -> None:
    payer = subscription.customer.subscriber if subscription.customer_id else None
    if isinstance(payer, User):
        user_tier_sync(user=payer)


class StripeSeatProvider:
    """Seats are the quantity of the team plan's subscription item."""

    def seats_change(self, *, team: Team, seats: int, actor: User) -> None:
        subscription = _paying_subscription(team)
        item = per_seat_item(subscription)
        if item is None:
            raise ApplicationError(BillingErrorCode.NO_SUBSCRIPTION, "The team has no per-seat plan.", status=409)
        api_key = stripe_api_key()
        with stripe_errors():
            data = stripe.Subscription.modify(
                subscription.id,
                api_key=api_key,
                items=[{"id": item["id"], "quantity": seats}],
                proration_behavior="create_prorations",
            )
            synced = Subscription.sync_from_stripe_data(data, api_key=api_key)
        _sync_payer(synced)

    def subscription_end(self, *, team: Team, actor: User) -> None:
        subscription = team_paying_subscription(team=team)
        if subscription is None:
            return
        api_key = stripe_api_key()
        with stripe_errors():
            data = stripe.Subscription.modify(subscription.id, api_key=api_key, cancel_at_period_end=True)
            synced = Subscription.sync_from_stripe_data(data, api_key=api_key)
        _sync_payer(synced)

    def billing_contact_transfer(
        self, *, team: Team, previous_owner: User, new_owner: User, actor: User | None
    ) -> dict[str, Any]:
        """Stripe cannot move a subscription to another customer, so the customer moves instead: the
        Stripe customer paying the team (with its card and invoices) gets the new owner as its e-mail
        and dj-stripe subscriber. Only when the previous owner is that payer and the new owner has no
        customer of their own (dj-stripe links one customer per user); otherwise nothing moves."""
        subscription = team_paying_subscription(team=team)
        if subscription is None:
            return {"subscription_moved": False, "subscription_reason": "no_paid_subscription"}
        customer = Customer.objects.select_for_update().get(id=subscription.customer_id)
        facts: dict[str, Any] = {"subscription": subscription.id, "customer": customer.id}
        if customer.subscriber_id != previous_owner.pk:
            return {**facts, "subscription_moved": False, "subscription_reason": "paid_by_another_admin"}
        if customer_for_user(user=new_owner) is not None:
            return {**facts, "subscription_moved": False, "subscription_reason": "new_owner_has_a_customer"}
        api_key = stripe_api_key()
        with stripe_errors():
            stripe.Customer.modify(
                customer.id,
                api_key=api_key,
                email=new_owner.email,
                metadata={djstripe_settings.SUBSCRIBER_CUSTOMER_KEY: str(new_owner.pk), "team_id": str(team.pk)},
            )
        customer.subscriber = new_owner
        customer.email = new_owner.email
        customer.save(update_fields=["subscriber", "email"])
        # The caller's entitlement signal recomputes both tiers (user_tier_sync) once the roles are set.
        return {**facts, "subscription_moved": True}


def on_team_entitlement_changed(sender: Any, team_id: Any, user_ids: list[Any], **kwargs: Any) -> None:
    team_tiers_sync(team_id=team_id)
    for user in User.objects.filter(pk__in=user_ids):
        user_tier_sync(user=user)


def connect() -> None:
    seat_provider_register(StripeSeatProvider())
    team_entitlement_changed.connect(on_team_entitlement_changed, dispatch_uid="billing:team_entitlement_changed")
