"""What account deletion erases in billing: the user's Stripe customer is deleted at Stripe, which
cancels its subscriptions at once, and its dj-stripe mirror goes (the customer row names the user)."""

from __future__ import annotations

import uuid

import stripe
from djstripe.models import Customer

from .stripe_client import stripe_api_key


def billing_erase_user(user_id: uuid.UUID) -> None:
    """A Stripe failure raises (the erasure task retries); a customer Stripe no longer has is done."""
    for customer in Customer.objects.filter(subscriber_id=user_id):
        try:
            stripe.Customer.delete(customer.id, api_key=stripe_api_key())
        except stripe.InvalidRequestError as exc:
            if exc.http_status != 404:
                raise
        customer.delete()
