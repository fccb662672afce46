"""Marketplace reactions to Stripe events, hooked onto dj-stripe's per-event signals (they run
inside dj-stripe's event transaction, after its own sync; a failure rolls the event back and
Stripe retries). Each handler takes only the object id from the event and re-reads Stripe.
"""

from __future__ import annotations

from typing import Any

from djstripe.models import Event
from djstripe.signals import WEBHOOK_SIGNALS

from .payments import charge_refund_sync, developer_account_sync, dispute_record, payout_record, purchase_settle

PAYMENT_INTENT_EVENTS = ["payment_intent.succeeded", "payment_intent.canceled", "payment_intent.payment_failed"]
DISPUTE_EVENTS = ["charge.dispute.created", "charge.dispute.funds_withdrawn"]
# Events of the platform account (added to the endpoint `billing_webhook_endpoint` creates). Those of
# connected accounts (account.updated, payout.paid) come through a Connect endpoint (`connect=true`)
# made in the dashboard and adopted.
PLATFORM_EVENTS = [*PAYMENT_INTENT_EVENTS, "charge.refunded", *DISPUTE_EVENTS]


def _object(event: Event) -> dict[str, Any]:
    return event.data.get("object") or {}


def _connected_account(event: Event) -> str:
    owner = getattr(event, "djstripe_owner_account", None)
    return (event.stripe_data or {}).get("account") or getattr(owner, "id", "") or ""


def on_payment_intent(sender: Any, event: Event, **kwargs: Any) -> None:
    if _object(event).get("id"):
        purchase_settle(payment_intent_id=_object(event)["id"])


def on_charge_refunded(sender: Any, event: Event, **kwargs: Any) -> None:
    if _object(event).get("object") == "charge":
        charge_refund_sync(charge_id=_object(event)["id"])


def on_dispute(sender: Any, event: Event, **kwargs: Any) -> None:
    if _object(event).get("object") == "dispute":
        dispute_record(dispute_id=_object(event)["id"])


def on_account_updated(sender: Any, event: Event, **kwargs: Any) -> None:
    account_id = _object(event).get("id") or _connected_account(event)
    if account_id:
        developer_account_sync(stripe_account_id=account_id)


def on_payout_paid(sender: Any, event: Event, **kwargs: Any) -> None:
    account_id = _connected_account(event)
    if account_id and _object(event).get("id"):
        payout_record(stripe_account_id=account_id, payout_id=_object(event)["id"])


def connect() -> None:
    from apps.billing.webhooks import WEBHOOK_EVENTS

    # Billing's endpoint list is the registry of platform events: billing cannot import us.
    WEBHOOK_EVENTS.extend(name for name in PLATFORM_EVENTS if name not in WEBHOOK_EVENTS)
    for name in PAYMENT_INTENT_EVENTS:
        WEBHOOK_SIGNALS[name].connect(on_payment_intent, dispatch_uid=f"marketplace:{name}")
    WEBHOOK_SIGNALS["charge.refunded"].connect(on_charge_refunded, dispatch_uid="marketplace:charge.refunded")
    for name in DISPUTE_EVENTS:
        WEBHOOK_SIGNALS[name].connect(on_dispute, dispatch_uid=f"marketplace:{name}")
    WEBHOOK_SIGNALS["account.updated"].connect(on_account_updated, dispatch_uid="marketplace:account.updated")
    WEBHOOK_SIGNALS["payout.paid"].connect(on_payout_paid, dispatch_uid="marketplace:payout.paid")
