"""Billing writes: Stripe customer, Checkout and portal sessions, cancellation, the tier sync,
payment failures, the plan catalogue and webhook endpoints.

``user_tier_sync`` is the only writer of ``User.tier``. Stripe is called with the configured
secret key through the stripe library; dj-stripe mirrors what comes back.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import stripe
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from djstripe.models import Customer, Invoice, Price, Product, Subscription, WebhookEndpoint
from djstripe.utils import convert_tstamp

from apps.accounts.models import Tier, User
from apps.core import metrics
from apps.core.audit import AuditAction, audit_record
from apps.core.errors import ApplicationError, NotFoundError

from . import tiers
from .error_codes import BillingErrorCode
from .models import BillingAccount, PaymentFailure
from .selectors import (
    billing_configured,
    customer_for_user,
    entitlement_for_user,
    price_for_tier,
    seats_cache_key,
)
from .signals import tier_changed

logger = logging.getLogger(__name__)

# The events a webhook endpoint created by ``billing_webhook_endpoint`` subscribes to.
WEBHOOK_EVENTS = [
    "checkout.session.completed",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
    "invoice.paid",
    "invoice.payment_failed",
    "invoice.payment_succeeded",
]


def stripe_api_key() -> str:
    if not billing_configured():
        raise ApplicationError(
            BillingErrorCode.BILLING_NOT_CONFIGURED,
            "Billing is not configured on this server.",
            status=503,
        )
    return settings.STRIPE_SECRET_KEY


@contextmanager
def stripe_errors() -> Iterator[None]:
    """Turn a failed Stripe call into a 502 with a stable code (the cause goes to the log)."""
    try:
        yield
    except stripe.StripeError as exc:
        logger.warning("stripe call failed: %s", exc.__class__.__name__, exc_info=True)
        raise ApplicationError(
            BillingErrorCode.STRIPE_UNAVAILABLE, "The payment provider could not complete the request.", status=502
        ) from exc


# CUSTOMER, CHECKOUT, PORTAL, CANCEL
# ------------------------------------------------------------------------------


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


# TIER SYNC (the only writer of User.tier)
# ------------------------------------------------------------------------------


def _announce_tier_change(*, user_id: Any, previous: str, tier: str) -> None:
    logger.info("tier changed", extra={"user_id": str(user_id), "previous_tier": previous, "tier": tier})
    tier_changed.send(sender=User, user_id=user_id, previous=previous, tier=tier)


def user_tier_sync(*, user: User) -> User:
    """Recompute the user's tier and seats from the mirrored subscriptions and store them.

    Locks the user row, so concurrent webhooks for one user apply one after another and the last
    one reads the latest committed subscription state; the order events arrive in doesn't matter.
    """
    with transaction.atomic():
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
        previous = locked.tier
        if previous != entitlement.tier:
            locked.tier = entitlement.tier
            locked.save(update_fields=["tier", "updated_at"])
            # The system decided (a webhook or a sync), so there is no actor.
            audit_record(
                action=AuditAction.TIER_CHANGED,
                actor=None,
                subject_user=locked,
                target=locked,
                data={"from": previous, "to": entitlement.tier, "seats": seats},
            )
            transaction.on_commit(
                partial(_announce_tier_change, user_id=locked.pk, previous=previous, tier=entitlement.tier)
            )
        transaction.on_commit(partial(cache.delete, seats_cache_key(locked.pk)))
    user.tier = locked.tier
    return locked


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


# PAYMENT FAILURES
# ------------------------------------------------------------------------------


def invoice_subscription_id(invoice: Invoice) -> str:
    data = invoice.stripe_data
    parent = (data.get("parent") or {}).get("subscription_details") or {}
    subscription = parent.get("subscription") or data.get("subscription") or ""
    return subscription if isinstance(subscription, str) else subscription.get("id", "")


def payment_failure_record(*, invoice: Invoice, user: User) -> PaymentFailure:
    """Record (or update) the failed payment of an invoice, from the mirrored invoice."""
    data = invoice.stripe_data
    paid = data.get("status") == "paid"
    failure, _ = PaymentFailure.objects.update_or_create(
        invoice_id=invoice.id,
        defaults={
            "user": user,
            "subscription_id": invoice_subscription_id(invoice),
            "amount_due": int(data.get("amount_due") or 0),
            "currency": str(data.get("currency") or settings.BILLING_CURRENCY),
            "attempt_count": int(data.get("attempt_count") or 0),
            "next_payment_attempt": convert_tstamp(data.get("next_payment_attempt")),
            "hosted_invoice_url": data.get("hosted_invoice_url") or "",
            "resolved_at": timezone.now() if paid else None,
        },
    )
    return failure


def payment_failure_resolve(*, invoice: Invoice) -> int:
    """Close the failure of an invoice that has now been paid."""
    return PaymentFailure.objects.filter(invoice_id=invoice.id, resolved_at__isnull=True).update(
        resolved_at=timezone.now(), updated_at=timezone.now()
    )


# CATALOGUE AND WEBHOOK ENDPOINTS (management commands)
# ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanSyncResult:
    tier: str
    product_id: str
    price_id: str
    created: bool


def _price_matches(price: Any, *, product_id: str, amount: int, currency: str) -> bool:
    recurring = price.get("recurring") or {}
    product = price.get("product")
    product = product if isinstance(product, str) else (product or {}).get("id")
    return (
        product == product_id
        and price.get("unit_amount") == amount
        and price.get("currency") == currency
        and recurring.get("interval") == "month"
        and (recurring.get("interval_count") or 1) == 1
        and price.get("billing_scheme", "per_unit") == "per_unit"
    )


def stripe_plans_sync(*, currency: str | None = None) -> list[PlanSyncResult]:
    """Create or update the products and monthly prices of the paid tiers in Stripe, idempotently,
    and mirror them into dj-stripe.

    Products have fixed ids (``adiuva_<tier>``); prices are found by lookup key. A price whose
    amount changed is replaced by a new one that takes over the lookup key; the old one is archived.
    """
    api_key = stripe_api_key()
    currency = (currency or settings.BILLING_CURRENCY).lower()
    results = []
    with stripe_errors():
        for tier in tiers.PAID_TIERS:
            product_id = f"adiuva_{tier}"
            name = f"Adiuva {Tier(tier).label}"
            metadata = {tiers.TIER_METADATA_KEY: tier}
            try:
                product = stripe.Product.retrieve(product_id, api_key=api_key)
            except stripe.InvalidRequestError as exc:
                if getattr(exc, "code", None) != "resource_missing":
                    raise
                product = stripe.Product.create(api_key=api_key, id=product_id, name=name, metadata=metadata)
            else:
                current = product.to_dict()  # stripe 15 objects have no dict methods of their own
                if (
                    current.get("name") != name
                    or not current.get("active")
                    or dict(current.get("metadata") or {}) != metadata
                ):
                    product = stripe.Product.modify(
                        product_id, api_key=api_key, name=name, active=True, metadata=metadata
                    )
            Product.sync_from_stripe_data(product, api_key=api_key)

            lookup_key = tiers.price_lookup_key(tier)
            amount = tiers.PLAN_PRICES[tier]
            existing = list(stripe.Price.list(api_key=api_key, lookup_keys=[lookup_key], active=True, limit=1).data)
            created = not (
                existing and _price_matches(existing[0], product_id=product_id, amount=amount, currency=currency)
            )
            if created:
                price = stripe.Price.create(
                    api_key=api_key,
                    product=product_id,
                    unit_amount=amount,
                    currency=currency,
                    recurring={"interval": "month", "usage_type": "licensed"},
                    lookup_key=lookup_key,
                    transfer_lookup_key=True,
                    nickname=f"{name} monthly" + (" per seat" if tier in tiers.PER_SEAT_TIERS else ""),
                    metadata=metadata,
                )
                for old in existing:
                    Price.sync_from_stripe_data(
                        stripe.Price.modify(old["id"], api_key=api_key, active=False), api_key=api_key
                    )
            else:
                price = existing[0]
            Price.sync_from_stripe_data(price, api_key=api_key)
            results.append(PlanSyncResult(tier=tier, product_id=product_id, price_id=price["id"], created=created))
    return results


def webhook_endpoint_create(*, base_url: str, contract_path: bool = False) -> WebhookEndpoint:
    """Register a webhook endpoint in Stripe and keep it (with its secret) in dj-stripe.

    By default the URL is dj-stripe's unguessable ``…/billing/webhook/<uuid>/``; with
    ``contract_path`` it is ``…/api/v1/billing/webhook``.
    """
    from django.urls import reverse

    api_key = stripe_api_key()
    djstripe_uuid = uuid.uuid4()
    path = (
        reverse("billing-webhook")
        if contract_path
        else reverse("djstripe:djstripe_webhook_by_uuid", kwargs={"uuid": djstripe_uuid})
    )
    url = base_url.rstrip("/") + path
    existing = WebhookEndpoint.objects.filter(url=url, livemode=settings.STRIPE_LIVE_MODE).first()
    if existing is not None and existing.secret:
        return existing
    with stripe_errors():
        data = stripe.WebhookEndpoint.create(
            api_key=api_key,
            url=url,
            # stripe types this as a list of event-name literals; ours is a list of those names
            enabled_events=WEBHOOK_EVENTS,  # type: ignore[arg-type]
            metadata={"djstripe_uuid": str(djstripe_uuid)},
        )
        return WebhookEndpoint.sync_from_stripe_data(data, api_key=api_key)


def webhook_endpoint_adopt(*, endpoint_id: str, secret: str) -> WebhookEndpoint:
    """Keep an endpoint made elsewhere (dashboard, ``stripe listen``) with the secret shown there."""
    api_key = stripe_api_key()
    with stripe_errors():
        data = stripe.WebhookEndpoint.retrieve(endpoint_id, api_key=api_key)
        endpoint = WebhookEndpoint.sync_from_stripe_data(data, api_key=api_key)
    endpoint.secret = secret
    endpoint.save(update_fields=["secret"])
    return endpoint


# WEBHOOKS
# ------------------------------------------------------------------------------


def _signed_endpoint(*, payload: str, signature: str, candidates: list[WebhookEndpoint]) -> WebhookEndpoint | None:
    for endpoint in candidates:
        if not endpoint.secret:
            continue
        try:
            stripe.WebhookSignature.verify_header(payload, signature, endpoint.secret, endpoint.djstripe_tolerance)
        except stripe.SignatureVerificationError:
            continue
        return endpoint
    return None


def webhook_receive(*, request: Any, endpoint_uuid: uuid.UUID | None = None) -> int:
    """Verify a Stripe webhook's signature, then hand it to dj-stripe to store and process.

    The signature is checked here first so a forged or unsigned request is a 400 that stores
    nothing (dj-stripe would keep a row for it). Without a uuid, any of this mode's endpoints may
    have signed it. dj-stripe stores each Event once, so a replay is acknowledged and skipped.
    Returns the id of dj-stripe's WebhookEventTrigger.
    """
    from djstripe.models import WebhookEventTrigger

    stripe_api_key()
    signature = request.headers.get("Stripe-Signature")
    if not signature:
        raise ApplicationError(
            BillingErrorCode.WEBHOOK_SIGNATURE_MISSING, "The Stripe-Signature header is missing.", status=400
        )
    endpoints = WebhookEndpoint.objects.filter(livemode=settings.STRIPE_LIVE_MODE)
    if endpoint_uuid is not None:
        endpoints = endpoints.filter(djstripe_uuid=endpoint_uuid)
    try:
        payload = request.body.decode("utf-8")
    except UnicodeDecodeError:
        payload = ""
    endpoint = _signed_endpoint(payload=payload, signature=signature, candidates=list(endpoints))
    if endpoint is None:
        metrics.webhook_failed(source="stripe", reason="signature")
        raise ApplicationError(
            BillingErrorCode.WEBHOOK_SIGNATURE_INVALID, "The webhook signature does not verify.", status=400
        )
    try:
        trigger = WebhookEventTrigger.from_request(request, webhook_endpoint=endpoint)
    except Exception as exc:
        # dj-stripe kept the trigger row with the traceback; a 503 makes Stripe retry later.
        logger.exception("stripe webhook processing failed")
        metrics.webhook_failed(source="stripe", reason="processing")
        raise ApplicationError(
            BillingErrorCode.WEBHOOK_PROCESSING_FAILED, "The event could not be processed; retry later.", status=503
        ) from exc
    if not trigger.valid:
        raise ApplicationError(
            BillingErrorCode.WEBHOOK_SIGNATURE_INVALID, "The webhook is not a Stripe event.", status=400
        )
    return trigger.id
