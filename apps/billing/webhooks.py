"""Stripe webhooks: registering or adopting an endpoint (``manage.py billing_webhook_endpoint``) and
the signed intake that hands a verified event to dj-stripe."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import stripe
from django.conf import settings
from djstripe.models import WebhookEndpoint

from apps.core import metrics
from apps.core.errors import ApplicationError

from .error_codes import BillingErrorCode
from .stripe_client import stripe_api_key, stripe_errors

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
