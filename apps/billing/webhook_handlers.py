"""Billing's reactions to Stripe events, run after dj-stripe has synced the event's object.

dj-stripe re-retrieves each object from Stripe before mirroring it, and these handlers read the
mirror (plus a fresh read of the subscription), never the event payload beyond object ids; so a
replayed, late or out-of-order event only ever recomputes the current truth. They run inside
dj-stripe's event transaction: a failure rolls the event back and Stripe retries it.
"""

from __future__ import annotations

import logging
from typing import Any

from djstripe.models import Customer, Event, Invoice, Subscription
from djstripe.signals import WEBHOOK_SIGNALS

from apps.accounts.models import User

from .payment_failures import invoice_subscription_id, payment_failure_record, payment_failure_resolve
from .subscriptions import subscription_refresh
from .tier_sync import user_tier_sync

logger = logging.getLogger(__name__)

SUBSCRIPTION_EVENTS = [
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
]
INVOICE_PAID_EVENTS = ["invoice.paid", "invoice.payment_succeeded"]


def _object_id(event: Event) -> str | None:
    obj = event.data.get("object") or {}
    return obj.get("id")


def _user_of_customer(customer: Customer | None) -> User | None:
    subscriber = customer.subscriber if customer is not None else None
    if subscriber is None and customer is not None:
        logger.warning("stripe customer %s is not linked to a user", customer.id)
    return subscriber


def on_subscription_event(sender: Any, event: Event, **kwargs: Any) -> None:
    subscription = Subscription.objects.select_related("customer__subscriber").filter(id=_object_id(event)).first()
    user = _user_of_customer(subscription.customer if subscription else None)
    if user is not None:
        user_tier_sync(user=user)


def on_checkout_completed(sender: Any, event: Event, **kwargs: Any) -> None:
    obj = event.data.get("object") or {}
    subscription_id = obj.get("subscription")
    if isinstance(subscription_id, dict):
        subscription_id = subscription_id.get("id")
    if not subscription_id:
        return
    # Checkout's subscription events may come later (or never reach us first): read it now.
    subscription = subscription_refresh(subscription_id=subscription_id)
    user = _user_of_customer(subscription.customer if subscription else None)
    if user is not None:
        user_tier_sync(user=user)


def _invoice_and_user(event: Event) -> tuple[Invoice | None, User | None]:
    invoice = Invoice.objects.select_related("customer__subscriber").filter(id=_object_id(event)).first()
    return invoice, _user_of_customer(invoice.customer if invoice else None)


def _refresh_invoice_subscription(invoice: Invoice) -> None:
    subscription_id = invoice_subscription_id(invoice)
    if subscription_id:
        subscription_refresh(subscription_id=subscription_id)


def on_invoice_payment_failed(sender: Any, event: Event, **kwargs: Any) -> None:
    invoice, user = _invoice_and_user(event)
    if invoice is None or user is None:
        return
    payment_failure_record(invoice=invoice, user=user)
    _refresh_invoice_subscription(invoice)
    user_tier_sync(user=user)


def on_invoice_paid(sender: Any, event: Event, **kwargs: Any) -> None:
    invoice, user = _invoice_and_user(event)
    if invoice is None or user is None:
        return
    payment_failure_resolve(invoice=invoice)
    _refresh_invoice_subscription(invoice)
    user_tier_sync(user=user)


def connect() -> None:
    """Hook the handlers onto dj-stripe's per-event signals (after dj-stripe's own sync)."""
    for name in SUBSCRIPTION_EVENTS:
        WEBHOOK_SIGNALS[name].connect(on_subscription_event, dispatch_uid=f"billing:{name}")
    WEBHOOK_SIGNALS["checkout.session.completed"].connect(
        on_checkout_completed, dispatch_uid="billing:checkout.session.completed"
    )
    WEBHOOK_SIGNALS["invoice.payment_failed"].connect(
        on_invoice_payment_failed, dispatch_uid="billing:invoice.payment_failed"
    )
    for name in INVOICE_PAID_EVENTS:
        WEBHOOK_SIGNALS[name].connect(on_invoice_paid, dispatch_uid=f"billing:{name}")
