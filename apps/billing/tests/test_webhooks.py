"""Signed Stripe webhooks move the tier: up, down, replayed, raced, late, forged."""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest
from django.db import connections
from django.test import Client, override_settings
from django.urls import reverse
from djstripe.models import Event, WebhookEventTrigger

from apps.accounts.models import User
from apps.billing.models import BillingAccount, PaymentFailure
from apps.billing.subscriptions import customer_get_or_create
from apps.core.testing.threads import run_in_threads

from .fake_stripe import sign
from .helpers import subscribe

pytestmark = pytest.mark.django_db

SUBSCRIPTION = "/api/v1/billing/subscription"


def _tier(user: User) -> str:
    return User.objects.get(pk=user.pk).tier


def test_an_active_subscription_event_moves_the_user_up(user, plans, fake_stripe, deliver):
    # given
    sub = subscribe(fake_stripe, user, "pro")

    # when
    response = deliver(fake_stripe.event("customer.subscription.created", sub))

    # then
    assert response.status_code == 200
    assert response.json() == {"ok": True}
    assert _tier(user) == "pro"


def test_a_trialing_subscription_grants_its_tier(user, plans, fake_stripe, deliver):
    sub = subscribe(fake_stripe, user, "power", status="trialing")

    deliver(fake_stripe.event("customer.subscription.created", sub))

    assert _tier(user) == "power"


@pytest.mark.parametrize("final_status", ["canceled", "unpaid", "incomplete_expired", "paused"])
def test_an_ended_subscription_moves_the_user_back_to_free(user, plans, fake_stripe, deliver, final_status):
    # given
    sub = subscribe(fake_stripe, user, "pro")
    deliver(fake_stripe.event("customer.subscription.created", sub))
    assert _tier(user) == "pro"

    # when
    fake_stripe.set_status(sub["id"], final_status)
    kind = "deleted" if final_status == "canceled" else "updated"
    response = deliver(
        fake_stripe.event(f"customer.subscription.{kind}", fake_stripe.objects["subscriptions"][sub["id"]])
    )

    # then
    assert response.status_code == 200
    assert _tier(user) == "free"


def test_checkout_completion_alone_grants_the_tier(user, auth_client, plans, fake_stripe, deliver):
    # given: the user went through Checkout; Stripe made the subscription and completed the session
    auth_client.post("/api/v1/billing/checkout", {"tier": "power"})
    session = next(iter(fake_stripe.objects["checkout_sessions"].values()))
    sub = subscribe(fake_stripe, user, "power")
    session.update(status="complete", payment_status="paid", subscription=sub["id"])

    # when
    response = deliver(fake_stripe.event("checkout.session.completed", session))

    # then
    assert response.status_code == 200
    assert _tier(user) == "power"


def test_team_seats_are_stored_and_shown(user, auth_client, plans, fake_stripe, deliver):
    # given
    sub = subscribe(fake_stripe, user, "team", seats=4)

    # when
    deliver(fake_stripe.event("customer.subscription.created", sub))

    # then
    assert _tier(user) == "team"
    assert BillingAccount.objects.get(user=user).seats == 4
    body = auth_client.get(SUBSCRIPTION).json()
    assert body["tier"] == "team"
    assert body["seats"] == 4
    assert body["subscription"]["seats"] == 4
    assert body["subscription"]["status"] == "active"


def test_the_tier_comes_from_the_current_subscription_not_the_event_payload(user, plans, fake_stripe, deliver):
    # given: an event claiming "active" about a subscription Stripe now reports as canceled
    sub = subscribe(fake_stripe, user, "pro")
    stale = fake_stripe.event("customer.subscription.updated", sub)
    fake_stripe.set_status(sub["id"], "canceled")

    # when
    deliver(stale)

    # then
    assert _tier(user) == "free"


def test_out_of_order_events_end_in_the_current_tier(user, plans, fake_stripe, deliver):
    # given: created(incomplete) and updated(active) snapshots; Stripe now says active
    sub = subscribe(fake_stripe, user, "pro", status="incomplete")
    created = fake_stripe.event("customer.subscription.created", sub)
    fake_stripe.set_status(sub["id"], "active")
    updated = fake_stripe.event("customer.subscription.updated", fake_stripe.objects["subscriptions"][sub["id"]])

    # when: the later event arrives first
    deliver(updated)
    deliver(created)

    # then
    assert _tier(user) == "pro"


def test_a_late_update_after_the_deletion_does_not_revive_the_tier(user, plans, fake_stripe, deliver):
    # given
    sub = subscribe(fake_stripe, user, "pro")
    updated = fake_stripe.event("customer.subscription.updated", sub)
    fake_stripe.set_status(sub["id"], "canceled")
    deleted = fake_stripe.event("customer.subscription.deleted", fake_stripe.objects["subscriptions"][sub["id"]])

    # when
    deliver(deleted)
    deliver(updated)

    # then
    assert _tier(user) == "free"


def test_a_replayed_event_is_acknowledged_and_processed_once(user, plans, fake_stripe, deliver):
    # given
    sub = subscribe(fake_stripe, user, "pro")
    event = fake_stripe.event("customer.subscription.created", sub)
    deliver(event)
    calls_after_first = len(fake_stripe.requests)

    # when
    response = deliver(event)

    # then
    assert response.status_code == 200
    assert Event.objects.filter(id=event["id"]).count() == 1
    assert len(fake_stripe.requests) == calls_after_first  # nothing re-read, nothing re-run
    assert _tier(user) == "pro"


def _failed_invoice_event(fake_stripe, user) -> tuple[dict, dict]:
    sub = subscribe(fake_stripe, user, "pro", status="past_due")
    customer = customer_get_or_create(user=user)
    invoice = fake_stripe.invoice(customer=customer.id, subscription=sub["id"], amount_due=1500)
    return invoice, fake_stripe.event("invoice.payment_failed", invoice)


def test_a_failed_payment_is_recorded_and_surfaced(user, auth_client, plans, fake_stripe, deliver):
    # given
    invoice, event = _failed_invoice_event(fake_stripe, user)

    # when
    response = deliver(event)

    # then
    assert response.status_code == 200
    body = auth_client.get(SUBSCRIPTION).json()
    assert body["payment_failed"] is True
    assert body["payment_failures"][0]["invoice_id"] == invoice["id"]
    assert body["payment_failures"][0]["amount_due"] == 1500
    assert body["payment_failures"][0]["currency"] == "eur"
    assert body["payment_failures"][0]["next_payment_attempt"] is not None
    assert body["tier"] == "pro"  # past_due keeps the plan while Stripe retries the card
    assert body["subscription"]["status"] == "past_due"


def test_paying_the_invoice_clears_the_failure(user, auth_client, plans, fake_stripe, deliver):
    # given
    invoice, event = _failed_invoice_event(fake_stripe, user)
    deliver(event)
    invoice.update(status="paid", amount_paid=1500, amount_remaining=0)
    fake_stripe.set_status(invoice["parent"]["subscription_details"]["subscription"], "active")

    # when
    deliver(fake_stripe.event("invoice.paid", invoice))

    # then
    body = auth_client.get(SUBSCRIPTION).json()
    assert body["payment_failed"] is False
    assert body["payment_failures"] == []
    assert body["subscription"]["status"] == "active"


def test_a_replayed_payment_failure_is_recorded_once(user, plans, fake_stripe, deliver):
    _, event = _failed_invoice_event(fake_stripe, user)

    deliver(event)
    deliver(event)

    assert PaymentFailure.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_deliveries_of_one_event_are_processed_once(user, plans, fake_stripe, deliver) -> None:
    # given
    invoice, event = _failed_invoice_event(fake_stripe, user)
    barrier = threading.Barrier(4)
    statuses: list[int] = []

    def post() -> None:
        try:
            barrier.wait()
            statuses.append(deliver(event, client=Client()).status_code)
        finally:
            connections.close_all()

    # when
    run_in_threads(post, 4)

    # then
    assert statuses == [200, 200, 200, 200]
    assert Event.objects.filter(id=event["id"]).count() == 1
    assert PaymentFailure.objects.count() == 1
    assert fake_stripe.count("GET", f"/v1/invoices/{invoice['id']}") == 1  # handlers ran once
    assert _tier(user) == "pro"


@pytest.mark.parametrize(
    ("signature", "code"),
    [
        (None, "webhook_signature_missing"),
        ("t=1700000000,v1=" + "0" * 64, "webhook_signature_invalid"),
        ("garbage", "webhook_signature_invalid"),
        ("wrong-secret", "webhook_signature_invalid"),
        ("expired", "webhook_signature_invalid"),
    ],
)
def test_a_forged_or_unsigned_event_is_a_400_and_stores_nothing(
    user, plans, fake_stripe, deliver, webhook_endpoint, signature, code
):
    # given
    sub = subscribe(fake_stripe, user, "team")
    event = fake_stripe.event("customer.subscription.created", sub)
    payload = json.dumps(event)
    if signature == "wrong-secret":
        signature = sign(payload, "whsec_attacker")
    elif signature == "expired":
        signature = sign(payload, webhook_endpoint.secret, timestamp=int(time.time()) - 3600)
    calls_before = len(fake_stripe.requests)

    # when
    response = deliver(event, signature=signature)

    # then
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert WebhookEventTrigger.objects.count() == 0
    assert Event.objects.count() == 0
    assert len(fake_stripe.requests) == calls_before
    assert _tier(user) == "free"


def test_a_tampered_body_under_a_real_signature_is_rejected(user, plans, fake_stripe, deliver, webhook_endpoint):
    # given: a genuine signature for one body, sent with another
    sub = subscribe(fake_stripe, user, "pro")
    genuine = json.dumps(fake_stripe.event("customer.subscription.updated", sub))
    forged = fake_stripe.event("customer.subscription.updated", {**sub, "status": "active"})

    # when
    response = deliver(forged, signature=sign(genuine, webhook_endpoint.secret))

    # then
    assert response.status_code == 400
    assert WebhookEventTrigger.objects.count() == 0


def test_the_per_endpoint_uuid_url_verifies_with_that_endpoint(user, plans, fake_stripe, webhook_endpoint):
    # given
    sub = subscribe(fake_stripe, user, "pro")
    payload = json.dumps(fake_stripe.event("customer.subscription.created", sub))
    headers = {"HTTP_STRIPE_SIGNATURE": sign(payload, webhook_endpoint.secret)}
    own = reverse("djstripe:djstripe_webhook_by_uuid", kwargs={"uuid": webhook_endpoint.djstripe_uuid})
    other = reverse("djstripe:djstripe_webhook_by_uuid", kwargs={"uuid": uuid.uuid4()})

    # when
    wrong = Client().post(other, data=payload, content_type="application/json", **headers)
    right = Client().post(own, data=payload, content_type="application/json", **headers)

    # then
    assert wrong.status_code == 400
    assert right.status_code == 200
    assert _tier(user) == "pro"


def test_webhooks_without_stripe_configured_answer_503_and_store_nothing(user, plans, fake_stripe, deliver):
    sub = subscribe(fake_stripe, user, "pro")

    with override_settings(STRIPE_SECRET_KEY=""):
        response = deliver(fake_stripe.event("customer.subscription.created", sub))

    assert response.status_code == 503
    assert response.json()["code"] == "billing_not_configured"
    assert WebhookEventTrigger.objects.count() == 0


def test_cancel_sets_cancel_at_period_end_and_keeps_the_tier(user, auth_client, plans, fake_stripe, deliver):
    # given
    sub = subscribe(fake_stripe, user, "pro")
    deliver(fake_stripe.event("customer.subscription.created", sub))

    # when
    response = auth_client.delete(SUBSCRIPTION)

    # then
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True
    assert body["subscription"]["cancel_at_period_end"] is True
    assert body["subscription"]["current_period_end"] is not None
    assert body["tier"] == "pro"
    assert fake_stripe.objects["subscriptions"][sub["id"]]["cancel_at_period_end"] is True


def test_another_users_subscription_never_shows(user, make_user, auth_client, plans, fake_stripe, deliver):
    # given
    other = make_user()
    deliver(fake_stripe.event("customer.subscription.created", subscribe(fake_stripe, other, "power")))

    # when
    body = auth_client.get(SUBSCRIPTION).json()

    # then
    assert body["tier"] == "free"
    assert body["subscription"] is None
    assert auth_client.delete(SUBSCRIPTION).status_code == 404
