"""Money through Stripe Connect: developers' Express accounts and onboarding links, destination
charges for paid installs (70 % to the developer, 30 % application fee), and the bookkeeping of
what Stripe reports: sales, refunds and disputes (reversing the developer's share), payouts.

Webhook-driven functions re-read the object from Stripe (current truth, not the event's copy)
and record each money movement under a unique ``(stripe_id, kind)``, so a replayed, late or
out-of-order event changes nothing twice.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import stripe
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from apps.accounts.models import User
from apps.billing.stripe_client import stripe_api_key, stripe_errors
from apps.billing.subscriptions import customer_get_or_create
from apps.core.errors import ApplicationError

from .error_codes import MarketplaceErrorCode
from .install_rows import install_create_locked, install_revoke_locked
from .models import (
    ConnectOnboarding,
    DeveloperAccount,
    Plugin,
    PluginInstall,
    PluginPurchase,
    PurchaseStatus,
    RevenueEvent,
    RevenueKind,
)
from .revenue import reversal_delta, split

logger = logging.getLogger(__name__)

PURCHASE_METADATA_KEY = "adiuva_plugin_purchase"
# Stripe's answers are read as plain dicts (``to_dict()``): since stripe 15 its objects have no
# dict methods of their own; ``get`` exists only while dj-stripe's compatibility shim is loaded.


def _stamp(value: Any) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(value), tz=dt.UTC) if value else timezone.now()


def _id(value: Any) -> str:
    return value if isinstance(value, str) else (value or {}).get("id", "")


# DEVELOPER ACCOUNTS (Connect Express)
# ------------------------------------------------------------------------------


def _onboarding_state(account: dict) -> dict[str, Any]:
    charges, payouts = bool(account.get("charges_enabled")), bool(account.get("payouts_enabled"))
    disabled = (account.get("requirements") or {}).get("disabled_reason")
    if charges and payouts:
        state = ConnectOnboarding.COMPLETE
    elif disabled and account.get("details_submitted"):
        state = ConnectOnboarding.RESTRICTED
    else:
        state = ConnectOnboarding.PENDING
    return {"onboarding": state, "charges_enabled": charges, "payouts_enabled": payouts}


def developer_account_get_or_create(*, user: User) -> DeveloperAccount:
    """The developer's Express account, created in Stripe once (serialised on the user row)."""
    api_key = stripe_api_key()
    with transaction.atomic():
        User.objects.select_for_update().only("pk").get(pk=user.pk)
        existing = DeveloperAccount.objects.filter(user=user).first()
        if existing is not None:
            return existing
        with stripe_errors():
            account = stripe.Account.create(
                api_key=api_key,
                type="express",
                email=user.email,
                metadata={"adiuva_user": str(user.pk)},
                capabilities={"card_payments": {"requested": True}, "transfers": {"requested": True}},
                idempotency_key=f"adiuva-connect-account-{user.pk}",
            ).to_dict()
        return DeveloperAccount.objects.create(user=user, stripe_account_id=account["id"], **_onboarding_state(account))


def developer_onboarding_link(*, user: User) -> tuple[DeveloperAccount, str]:
    """An AccountLink URL the developer opens to finish (or resume) Connect onboarding."""
    account = developer_account_get_or_create(user=user)
    with stripe_errors():
        link = stripe.AccountLink.create(
            api_key=stripe_api_key(),
            account=account.stripe_account_id,
            refresh_url=settings.MARKETPLACE_CONNECT_REFRESH_URL,
            return_url=settings.MARKETPLACE_CONNECT_RETURN_URL,
            type="account_onboarding",
        )
    return account, str(link["url"])


def developer_account_sync(*, stripe_account_id: str) -> DeveloperAccount | None:
    """Re-read a Connect account from Stripe and store its onboarding state."""
    account = DeveloperAccount.objects.filter(stripe_account_id=stripe_account_id).first()
    if account is None:
        return None
    with stripe_errors():
        data = stripe.Account.retrieve(stripe_account_id, api_key=stripe_api_key()).to_dict()
    for field, value in _onboarding_state(data).items():
        setattr(account, field, value)
    account.save(update_fields=["onboarding", "charges_enabled", "payouts_enabled", "updated_at"])
    return account


# PURCHASES (destination charges)
# ------------------------------------------------------------------------------


def purchase_start(*, user: User, plugin: Plugin) -> PluginPurchase:
    """The user's purchase of a paid plugin with its PaymentIntent (created once: a retried install
    returns the same purchase and client secret; Stripe dedupes on the idempotency key).

    A customer with a default card is charged off-session at once (the purchase comes back
    succeeded, the plugin installed); otherwise, or when the bank asks for authentication, the
    purchase stays pending with a client secret for the customer to confirm."""
    api_key = stripe_api_key()
    developer = DeveloperAccount.objects.filter(user_id=plugin.developer_id).first()
    if developer is None or not developer.charges_enabled:
        raise ApplicationError(
            MarketplaceErrorCode.DEVELOPER_NOT_PAYABLE,
            "This plugin's developer cannot receive payments yet; try again later.",
            status=409,
        )
    assert plugin.latest_version is not None  # a listed plugin has one (plugin_for_install)
    amounts = split(plugin.price_cents)
    with transaction.atomic():
        purchase = (
            PluginPurchase.objects.select_for_update()
            .filter(user=user, plugin=plugin, status=PurchaseStatus.PENDING)
            .first()
        )
        if purchase is None:
            try:
                with transaction.atomic():
                    purchase = PluginPurchase.objects.create(
                        user=user,
                        plugin=plugin,
                        version=plugin.latest_version,
                        developer_id=plugin.developer_id,
                        destination_account_id=developer.stripe_account_id,
                        amount_cents=amounts.gross_cents,
                        fee_cents=amounts.fee_cents,
                        currency=settings.BILLING_CURRENCY.lower(),
                    )
            except IntegrityError:
                # A concurrent install created the pending purchase first: use that one.
                purchase = PluginPurchase.objects.select_for_update().get(
                    user=user, plugin=plugin, status=PurchaseStatus.PENDING
                )
        if purchase.stripe_payment_intent_id:
            return purchase
    customer = customer_get_or_create(user=user)
    charge = {
        "api_key": api_key,
        "amount": purchase.amount_cents,
        "currency": purchase.currency,
        "customer": customer.id,
        "application_fee_amount": purchase.fee_cents,
        "transfer_data": {"destination": purchase.destination_account_id},
        "description": f"Adiuva plugin {plugin.slug}",
        "metadata": {
            PURCHASE_METADATA_KEY: str(purchase.pk),
            "adiuva_plugin": plugin.slug,
            "adiuva_user": str(user.pk),
        },
        "idempotency_key": purchase.idempotency_key,
    }
    with stripe_errors():
        payment_method = _default_payment_method(customer_id=customer.id, api_key=api_key)
        if payment_method:
            intent = _charge_off_session(charge=charge, payment_method=payment_method)
        else:
            intent = stripe.PaymentIntent.create(**charge, automatic_payment_methods={"enabled": True})
    PluginPurchase.objects.filter(pk=purchase.pk).update(
        stripe_payment_intent_id=intent["id"], client_secret=intent["client_secret"] or "", updated_at=timezone.now()
    )
    if intent["status"] == "succeeded":
        # Charged in the request: settle now (the webhook that follows finds it settled).
        return purchase_settle(payment_intent_id=intent["id"]) or purchase
    purchase.refresh_from_db()
    return purchase


def _default_payment_method(*, customer_id: str, api_key: str) -> str:
    """The customer's default card (a paid subscription's checkout saves one), or ''."""
    customer: Any = stripe.Customer.retrieve(customer_id, api_key=api_key)
    default = (customer.get("invoice_settings") or {}).get("default_payment_method")
    if isinstance(default, dict):
        default = default.get("id")
    return str(default or "")


def _charge_off_session(*, charge: dict[str, Any], payment_method: str) -> Any:
    """Charge the saved card with the customer absent. When the bank wants authentication (or
    declines), Stripe answers a card error carrying the intent, which then awaits the customer."""
    try:
        return stripe.PaymentIntent.create(
            **charge,
            payment_method=payment_method,
            payment_method_types=["card"],
            off_session=True,
            confirm=True,
        )
    except stripe.CardError as exc:
        body: Any = exc.json_body or {}
        intent = (body.get("error") or {}).get("payment_intent")
        if not isinstance(intent, dict) or not intent.get("id"):
            raise
        logger.info("marketplace: off-session charge needs the customer (%s)", exc.code)
        return intent


def _purchase_for_intent(payment_intent: dict) -> PluginPurchase | None:
    purchase = PluginPurchase.objects.filter(stripe_payment_intent_id=payment_intent["id"]).first()
    if purchase is None:
        # The webhook may beat the row update that stored the intent id: fall back on metadata.
        purchase_id = (payment_intent.get("metadata") or {}).get(PURCHASE_METADATA_KEY)
        purchase = PluginPurchase.objects.filter(pk=purchase_id).first() if purchase_id else None
    return purchase


def purchase_settle(*, payment_intent_id: str) -> PluginPurchase | None:
    """Apply a PaymentIntent's current state: succeeded → paid, sale recorded, plugin installed;
    canceled → failed. Anything else (processing, requires_action…) leaves the purchase pending."""
    with stripe_errors():
        intent = stripe.PaymentIntent.retrieve(payment_intent_id, api_key=stripe_api_key()).to_dict()
    found = _purchase_for_intent(intent)
    if found is None:
        logger.info("marketplace: payment intent %s is not a plugin purchase", payment_intent_id)
        return None
    with transaction.atomic():
        # Lock order: plugin, then purchase (installs lock the plugin first too).
        plugin = Plugin.objects.select_for_update().get(pk=found.plugin_id)
        purchase = PluginPurchase.objects.select_for_update().get(pk=found.pk)
        if purchase.status != PurchaseStatus.PENDING:
            return purchase  # already settled: a replay or a late event changes nothing
        if intent["status"] == "succeeded":
            purchase.status = PurchaseStatus.SUCCEEDED
            purchase.paid_at = timezone.now()
            purchase.stripe_payment_intent_id = intent["id"]
            purchase.stripe_charge_id = _id(intent.get("latest_charge"))
            purchase.save(
                update_fields=["status", "paid_at", "stripe_payment_intent_id", "stripe_charge_id", "updated_at"]
            )
            amounts = split(int(intent.get("amount_received") or intent["amount"]))
            RevenueEvent.objects.get_or_create(
                stripe_id=intent["id"],
                kind=RevenueKind.SALE,
                defaults={
                    "developer_id": purchase.developer_id,
                    "plugin": plugin,
                    "purchase": purchase,
                    "gross_cents": amounts.gross_cents,
                    "fee_cents": amounts.fee_cents,
                    "developer_cents": amounts.developer_cents,
                    "currency": intent["currency"],
                    "occurred_at": _stamp(intent.get("created")),
                },
            )
            install_create_locked(user=purchase.user, plugin=plugin)
        elif intent["status"] == "canceled":
            purchase.status = PurchaseStatus.FAILED
            purchase.save(update_fields=["status", "updated_at"])
        return purchase


def _purchase_for_charge(charge: dict) -> PluginPurchase | None:
    """The purchase a charge paid for, settled first (a refund may arrive before the success)."""
    intent_id = _id(charge.get("payment_intent"))
    if not intent_id:
        return None
    purchase = PluginPurchase.objects.filter(stripe_payment_intent_id=intent_id).first()
    if purchase is not None and purchase.status == PurchaseStatus.PENDING:
        purchase = purchase_settle(payment_intent_id=intent_id)
    return purchase


def _reversed_cents(*, purchase: PluginPurchase, kind: RevenueKind) -> int:
    total = RevenueEvent.objects.filter(purchase=purchase, kind=kind).aggregate(total=Sum("gross_cents"))["total"]
    return -(total or 0)


def _record_reversal(*, purchase: PluginPurchase, kind: RevenueKind, reversed_now: int, stripe_id: str) -> None:
    """Record the part of the sale newly reversed by ``kind`` (the caller holds the purchase lock)."""
    before = _reversed_cents(purchase=purchase, kind=kind)
    delta = reversal_delta(
        gross_cents=purchase.amount_cents, reversed_before_cents=before, reversed_now_cents=reversed_now
    )
    if delta.gross_cents <= 0:
        return
    RevenueEvent.objects.get_or_create(
        stripe_id=stripe_id,
        kind=kind,
        defaults={
            "developer_id": purchase.developer_id,
            "plugin_id": purchase.plugin_id,
            "purchase": purchase,
            "gross_cents": -delta.gross_cents,
            "fee_cents": -delta.fee_cents,
            "developer_cents": -delta.developer_cents,
            "currency": purchase.currency,
            "occurred_at": timezone.now(),
        },
    )


def charge_refund_sync(*, charge_id: str) -> PluginPurchase | None:
    """Record refunds of a plugin charge from its current ``amount_refunded`` (cumulative, so any
    number of partial refunds and replays add up exactly); a full refund removes the install."""
    with stripe_errors():
        charge = stripe.Charge.retrieve(charge_id, api_key=stripe_api_key()).to_dict()
    found = _purchase_for_charge(charge)
    if found is None:
        return None
    with transaction.atomic():
        plugin = Plugin.objects.select_for_update().get(pk=found.plugin_id)
        purchase = PluginPurchase.objects.select_for_update().get(pk=found.pk)
        if purchase.status not in (PurchaseStatus.SUCCEEDED, PurchaseStatus.REFUNDED):
            return purchase
        refunded = int(charge.get("amount_refunded") or 0)
        _record_reversal(
            purchase=purchase,
            kind=RevenueKind.REFUND,
            reversed_now=refunded,
            stripe_id=f"{charge_id}:refunded:{refunded}",
        )
        if refunded >= purchase.amount_cents and purchase.status != PurchaseStatus.REFUNDED:
            purchase.status = PurchaseStatus.REFUNDED
            purchase.save(update_fields=["status", "updated_at"])
            install = PluginInstall.objects.filter(
                user_id=purchase.user_id, plugin=plugin, uninstalled_at__isnull=True
            ).first()
            if install is not None:
                install_revoke_locked(install=install)
        return purchase


def dispute_record(*, dispute_id: str) -> PluginPurchase | None:
    """A dispute withdraws its amount: reverse that part of the split once per dispute."""
    with stripe_errors():
        dispute = stripe.Dispute.retrieve(dispute_id, api_key=stripe_api_key())
        charge = stripe.Charge.retrieve(_id(dispute["charge"]), api_key=stripe_api_key()).to_dict()
    found = _purchase_for_charge(charge)
    if found is None:
        return None
    with transaction.atomic():
        purchase = PluginPurchase.objects.select_for_update().get(pk=found.pk)
        if purchase.status not in (PurchaseStatus.SUCCEEDED, PurchaseStatus.REFUNDED):
            return purchase
        if RevenueEvent.objects.filter(stripe_id=dispute_id, kind=RevenueKind.DISPUTE).exists():
            return purchase
        before = _reversed_cents(purchase=purchase, kind=RevenueKind.DISPUTE)
        _record_reversal(
            purchase=purchase,
            kind=RevenueKind.DISPUTE,
            reversed_now=before + int(dispute["amount"]),
            stripe_id=dispute_id,
        )
        return purchase


def payout_record(*, stripe_account_id: str, payout_id: str) -> RevenueEvent | None:
    """A paid-out payout on a developer's connected account, recorded once by its Stripe id."""
    developer = DeveloperAccount.objects.filter(stripe_account_id=stripe_account_id).first()
    if developer is None:
        return None
    with stripe_errors():
        payout = stripe.Payout.retrieve(payout_id, api_key=stripe_api_key(), stripe_account=stripe_account_id).to_dict()
    if payout.get("status") != "paid":
        return None
    amount = int(payout["amount"])
    event, _ = RevenueEvent.objects.get_or_create(
        stripe_id=payout_id,
        kind=RevenueKind.PAYOUT,
        defaults={
            "developer_id": developer.user_id,
            "gross_cents": amount,
            "fee_cents": 0,
            "developer_cents": amount,
            "currency": payout["currency"],
            "occurred_at": _stamp(payout.get("arrival_date") or payout.get("created")),
        },
    )
    return event
