"""Test helpers: a user's Stripe customer and subscription on the fake, delivered as events."""

from __future__ import annotations

from djstripe.models import Customer

from apps.accounts.models import User
from apps.billing import tiers
from apps.billing.subscriptions import customer_get_or_create

from .fake_stripe import FakeStripe


def subscribe(fake: FakeStripe, user: User, tier: str, *, status: str = "active", seats: int = 1) -> dict:
    """A subscription in (fake) Stripe for the user's customer, as Checkout would leave it."""
    customer: Customer = customer_get_or_create(user=user)
    return fake.subscription(
        customer=customer.id, lookup_key=tiers.price_lookup_key(tier), status=status, quantity=seats
    )
