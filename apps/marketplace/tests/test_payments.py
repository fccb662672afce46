"""Paid plugins through Stripe Connect (the fake Stripe on loopback, signed webhooks through
dj-stripe): onboarding, destination charges, install on payment, the 70/30 split, refunds,
disputes, payouts, earnings — and replayed or out-of-order events changing nothing twice."""

from __future__ import annotations

import datetime as dt

import pytest

from apps.accounts.testing import client_for
from apps.marketplace.models import (
    DeveloperAccount,
    PluginInstall,
    PluginPurchase,
    PurchaseStatus,
    RevenueEvent,
)

from .fake_connect import AUTHENTICATION_REQUIRED_PM

pytestmark = pytest.mark.django_db

PRICE = 999  # fee 300 (299.7 rounded half up), developer 699
INSTALL = "/api/v1/plugins/time-tracker/install"


def _period() -> str:
    return dt.datetime.now(tz=dt.UTC).strftime("%Y-%m")


@pytest.fixture
def payable_developer(developer, developer_client, fake_stripe, deliver):
    """A developer who finished Connect onboarding (Stripe says so through account.updated)."""
    response = developer_client.post("/api/v1/plugins/developer/connect")
    assert response.status_code == 200
    account_id = response.json()["account_id"]
    account = fake_stripe.account_enable(account_id)
    assert deliver(fake_stripe.connect_event("account.updated", account, account=account_id)).status_code == 200
    return DeveloperAccount.objects.get(user=developer)


@pytest.fixture
def paid_plugin(payable_developer, listed):
    return listed(price_cents=PRICE).plugin


def _pay(fake_stripe, deliver, power_client) -> tuple[dict, PluginPurchase]:
    """Install a paid plugin, have the customer pay, deliver payment_intent.succeeded."""
    started = power_client.post(INSTALL).json()
    purchase = PluginPurchase.objects.get(pk=started["purchase_id"])
    intent = fake_stripe.payment_succeed(purchase.stripe_payment_intent_id)
    response = deliver(fake_stripe.event("payment_intent.succeeded", intent))
    assert response.status_code == 200, response.content
    return intent, purchase


def test_connect_onboarding_creates_one_express_account_and_links(developer_client, fake_stripe, developer):
    first = developer_client.post("/api/v1/plugins/developer/connect")
    second = developer_client.post("/api/v1/plugins/developer/connect")

    assert first.status_code == 200
    body = first.json()
    assert body["onboarding_url"].startswith("https://connect.stripe.test/setup/")
    assert body["onboarding"] == "pending"
    assert second.json()["account_id"] == body["account_id"]
    assert fake_stripe.count("POST", "/v1/accounts") == 1
    assert fake_stripe.count("POST", "/v1/account_links") == 2
    [(_, _, params)] = [r for r in fake_stripe.requests if r[:2] == ("POST", "/v1/accounts")]
    assert params["type"] == "express"


def test_a_paid_install_is_a_destination_charge_and_waits_for_payment(paid_plugin, power_client, fake_stripe):
    # when
    response = power_client.post(INSTALL)
    retried = power_client.post(INSTALL)

    # then
    assert response.status_code == 202
    body = response.json()
    assert body["ok"] is False
    assert body["status"] == "payment_required"
    assert body["client_secret"].endswith("_secret_fake")
    assert body["amount_cents"] == PRICE
    assert retried.json()["purchase_id"] == body["purchase_id"]  # one purchase in flight
    assert fake_stripe.count("POST", "/v1/payment_intents") == 1
    [(_, _, params)] = [r for r in fake_stripe.requests if r[:2] == ("POST", "/v1/payment_intents")]
    developer_account = DeveloperAccount.objects.get()
    assert params["amount"] == str(PRICE)
    assert params["application_fee_amount"] == "300"
    assert params["transfer_data"] == {"destination": developer_account.stripe_account_id}
    assert not PluginInstall.objects.exists()


def _card_on_file(fake_stripe, user, payment_method: str = "pm_card_visa") -> None:
    from apps.billing.subscriptions import customer_get_or_create

    fake_stripe.card_on_file(customer_get_or_create(user=user).id, payment_method)


def test_a_paid_install_charges_the_card_on_file_and_answers_the_seeds_shape(
    paid_plugin, power_client, power_user, fake_stripe
):
    # given a subscriber with a default card
    _card_on_file(fake_stripe, power_user)

    # when
    response = power_client.post(INSTALL)
    again = power_client.post(INSTALL)

    # then the seed's answer: charged and installed in the request
    assert response.status_code == 200
    assert response.json()["ok"] is True
    assert "download_url" in response.json()
    assert again.status_code == 200
    # one off-session destination charge with the 30 % fee, on the default card
    [(_, _, params)] = [r for r in fake_stripe.requests if r[:2] == ("POST", "/v1/payment_intents")]
    assert (params["off_session"], params["confirm"], params["payment_method"]) == ("true", "true", "pm_card_visa")
    assert params["application_fee_amount"] == "300"
    assert params["transfer_data"] == {"destination": DeveloperAccount.objects.get().stripe_account_id}
    [purchase] = PluginPurchase.objects.all()
    assert purchase.status == PurchaseStatus.SUCCEEDED
    [sale] = RevenueEvent.objects.all()
    assert (sale.kind, sale.gross_cents, sale.fee_cents) == ("sale", 999, 300)
    assert PluginInstall.objects.filter(user=power_user, uninstalled_at__isnull=True).count() == 1


def test_a_card_needing_authentication_answers_202_with_the_client_secret_once(
    paid_plugin, power_client, power_user, fake_stripe, deliver
):
    # given a default card whose bank asks for authentication off-session
    _card_on_file(fake_stripe, power_user, AUTHENTICATION_REQUIRED_PM)

    # when
    response = power_client.post(INSTALL)
    retried = power_client.post(INSTALL)

    # then the client gets the intent to confirm with the customer present, and nothing is installed
    assert response.status_code == 202
    body = response.json()
    assert (body["ok"], body["status"]) == (False, "payment_required")
    purchase = PluginPurchase.objects.get(pk=body["purchase_id"])
    assert body["client_secret"] == f"{purchase.stripe_payment_intent_id}_secret_fake"
    assert retried.json()["purchase_id"] == body["purchase_id"]
    assert fake_stripe.count("POST", "/v1/payment_intents") == 1
    assert not PluginInstall.objects.exists()
    # and once the customer authenticated, the webhook installs it
    intent = fake_stripe.payment_succeed(purchase.stripe_payment_intent_id)
    assert deliver(fake_stripe.event("payment_intent.succeeded", intent)).status_code == 200
    assert power_client.post(INSTALL).status_code == 200


def test_payment_success_installs_and_records_the_sale_once(
    paid_plugin, power_client, power_user, fake_stripe, deliver
):
    # when
    intent, purchase = _pay(fake_stripe, deliver, power_client)
    replayed = deliver(fake_stripe.event("payment_intent.succeeded", intent))  # a new event id, same payment
    again = power_client.post(INSTALL)

    # then
    assert replayed.status_code == 200
    purchase.refresh_from_db()
    assert purchase.status == PurchaseStatus.SUCCEEDED
    [sale] = RevenueEvent.objects.all()
    assert (sale.kind, sale.gross_cents, sale.fee_cents, sale.developer_cents) == ("sale", 999, 300, 699)
    assert PluginInstall.objects.filter(user=power_user, uninstalled_at__isnull=True).count() == 1
    assert again.status_code == 200
    assert again.json()["ok"] is True
    assert "download_url" in again.json()


def test_the_same_event_delivered_twice_is_processed_once(paid_plugin, power_client, fake_stripe, deliver):
    started = power_client.post(INSTALL).json()
    purchase = PluginPurchase.objects.get(pk=started["purchase_id"])
    event = fake_stripe.event(
        "payment_intent.succeeded", fake_stripe.payment_succeed(purchase.stripe_payment_intent_id)
    )

    assert deliver(event).status_code == 200
    assert deliver(event).status_code == 200

    assert RevenueEvent.objects.count() == 1
    assert PluginInstall.objects.count() == 1


def test_an_out_of_date_event_applies_stripes_current_state(paid_plugin, power_client, fake_stripe, deliver):
    # given: a "processing" event arrives after the payment already succeeded at Stripe
    started = power_client.post(INSTALL).json()
    purchase = PluginPurchase.objects.get(pk=started["purchase_id"])
    stale = fake_stripe.event(
        "payment_intent.processing", fake_stripe.objects["payment_intents"][purchase.stripe_payment_intent_id]
    )
    stale_failed = fake_stripe.event(
        "payment_intent.payment_failed", fake_stripe.objects["payment_intents"][purchase.stripe_payment_intent_id]
    )
    intent = fake_stripe.payment_succeed(purchase.stripe_payment_intent_id)

    # when: the failure event (older than the success) arrives late, then the success
    deliver(stale)
    deliver(stale_failed)
    deliver(fake_stripe.event("payment_intent.succeeded", intent))
    deliver(stale_failed)

    # then: the purchase is paid once; nothing marked it failed
    purchase.refresh_from_db()
    assert purchase.status == PurchaseStatus.SUCCEEDED
    assert RevenueEvent.objects.filter(kind="sale").count() == 1


def test_a_refund_arriving_before_the_success_event_settles_then_reverses(
    paid_plugin, power_client, fake_stripe, deliver
):
    # given: paid and refunded in full at Stripe; the success event has not arrived yet
    started = power_client.post(INSTALL).json()
    purchase = PluginPurchase.objects.get(pk=started["purchase_id"])
    intent = fake_stripe.payment_succeed(purchase.stripe_payment_intent_id)
    charge = fake_stripe.refund(intent["latest_charge"], PRICE)

    # when
    deliver(fake_stripe.event("charge.refunded", charge))
    deliver(fake_stripe.event("payment_intent.succeeded", intent))

    # then: sale then full reversal; the refunded user has no install
    purchase.refresh_from_db()
    assert purchase.status == PurchaseStatus.REFUNDED
    totals = {e.kind: (e.gross_cents, e.fee_cents, e.developer_cents) for e in RevenueEvent.objects.all()}
    assert totals == {"sale": (999, 300, 699), "refund": (-999, -300, -699)}
    assert not PluginInstall.objects.filter(uninstalled_at__isnull=True).exists()


def test_partial_refunds_and_a_dispute_reverse_the_developer_share_proportionally(
    paid_plugin, power_client, fake_stripe, deliver, developer_client
):
    # given
    intent, purchase = _pay(fake_stripe, deliver, power_client)
    charge_id = intent["latest_charge"]

    # when: 333 refunded (event delivered twice), then a dispute of 500 (created + funds withdrawn)
    refunded = fake_stripe.event("charge.refunded", fake_stripe.refund(charge_id, 333))
    deliver(refunded)
    deliver(fake_stripe.event("charge.refunded", fake_stripe.objects["charges"][charge_id]))
    dispute = fake_stripe.dispute(charge_id, amount=500)
    deliver(fake_stripe.event("charge.dispute.created", dispute))
    deliver(fake_stripe.event("charge.dispute.funds_withdrawn", dispute))

    # then: refund 333 → fee 100, developer 233; dispute 500 → fee 150, developer 350
    rows = sorted((e.kind, e.gross_cents, e.fee_cents, e.developer_cents) for e in RevenueEvent.objects.all())
    assert rows == [("dispute", -500, -150, -350), ("refund", -333, -100, -233), ("sale", 999, 300, 699)]
    earnings = developer_client.get("/api/v1/plugins/developer/earnings", {"period": _period()}).json()
    assert earnings == {
        "period": _period(),
        "currency": "eur",
        "sales": 1,
        "gross_cents": 999,
        "platform_fee_cents": 300,
        "developer_share_cents": 699,
        "refunds_cents": 233,
        "disputes_cents": 350,
        "net_cents": 116,
        "payouts_cents": 0,
    }
    purchase.refresh_from_db()
    assert purchase.status == PurchaseStatus.SUCCEEDED  # partially refunded: still installed


def test_payouts_are_recorded_once_by_stripe_id(payable_developer, fake_stripe, deliver, developer_client):
    account = payable_developer.stripe_account_id
    payout = fake_stripe.payout(account, 4200)

    deliver(fake_stripe.connect_event("payout.paid", payout, account=account))
    deliver(fake_stripe.connect_event("payout.paid", payout, account=account))

    [row] = RevenueEvent.objects.filter(kind="payout")
    assert (row.stripe_id, row.developer_cents) == (payout["id"], 4200)
    earnings = developer_client.get("/api/v1/plugins/developer/earnings", {"period": _period()}).json()
    assert earnings["payouts_cents"] == 4200


def test_earnings_take_a_month(developer_client):
    response = developer_client.get("/api/v1/plugins/developer/earnings", {"period": "2026-13"})

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_period"


def test_a_paid_plugin_of_a_developer_without_connect_cannot_be_bought(listed, power_client, fake_stripe):
    listed(price_cents=PRICE)

    response = power_client.post(INSTALL)

    assert response.status_code == 409
    assert response.json()["code"] == "developer_not_payable"
    assert not PluginPurchase.objects.exists()


def test_the_webhook_endpoint_billing_creates_subscribes_to_the_payment_events(fake_stripe, db):
    from apps.billing.webhooks import webhook_endpoint_create

    webhook_endpoint_create(base_url="https://api.example.test", contract_path=True)

    [(_, _, params)] = [r for r in fake_stripe.requests if r[:2] == ("POST", "/v1/webhook_endpoints")]
    assert {"payment_intent.succeeded", "charge.refunded", "charge.dispute.created"} <= set(params["enabled_events"])
    assert "customer.subscription.updated" in params["enabled_events"]


def test_connect_onboarding_needs_a_verified_address(make_user, fake_stripe):
    # given a developer who has not verified their e-mail address
    unverified = client_for(make_user("unverified-dev@example.com"))

    # when they ask for a payout account
    response = unverified.post("/api/v1/plugins/developer/connect")

    # then they are told to verify first, and no Stripe account is created
    assert response.status_code == 403
    assert response.json()["code"] == "email_not_verified"
    assert fake_stripe.count("POST", "/v1/accounts") == 0
