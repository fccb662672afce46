"""Checkout, the customer portal and cancellation against a fake Stripe on loopback."""

from __future__ import annotations

import pytest
from django.test import override_settings
from djstripe.models import Customer

from apps.billing.subscriptions import customer_get_or_create

pytestmark = pytest.mark.django_db

CHECKOUT = "/api/v1/billing/checkout"
PORTAL = "/api/v1/billing/portal"
SUBSCRIPTION = "/api/v1/billing/subscription"


def _checkout_params(fake_stripe) -> dict:
    _method, _path, params = [r for r in fake_stripe.requests if r[1] == "/v1/checkout/sessions"][-1]
    return params


def test_checkout_creates_a_stripe_session_for_the_tier_price(auth_client, user, plans, fake_stripe):
    # when
    response = auth_client.post(CHECKOUT, {"tier": "pro"})

    # then
    assert response.status_code == 200
    assert response.json()["checkout_url"].startswith("https://checkout.stripe.test/c/pay/cs_")
    params = _checkout_params(fake_stripe)
    customer = Customer.objects.get(subscriber=user)
    assert params["mode"] == "subscription"
    assert params["customer"] == customer.id
    assert params["line_items"] == [{"price": plans["pro"].price_id, "quantity": "1"}]
    assert params["client_reference_id"] == str(user.pk)
    assert params["subscription_data"]["metadata"]["adiuva_tier"] == "pro"


def test_the_stripe_customer_is_created_once_and_linked_to_the_user(auth_client, user, plans, fake_stripe):
    # given
    auth_client.post(CHECKOUT, {"tier": "pro"})

    # when
    auth_client.post(CHECKOUT, {"tier": "power"})
    customer_get_or_create(user=user)

    # then
    assert fake_stripe.count("POST", "/v1/customers") == 1
    customer = Customer.objects.get()
    assert customer.subscriber == user
    assert fake_stripe.objects["customers"][customer.id]["metadata"]["djstripe_subscriber"] == str(user.pk)
    assert fake_stripe.objects["customers"][customer.id]["email"] == user.email


def test_team_checkout_buys_the_requested_seats(auth_client, plans, fake_stripe):
    # when
    response = auth_client.post(CHECKOUT, {"tier": "team", "seats": 5})

    # then
    assert response.status_code == 200
    assert _checkout_params(fake_stripe)["line_items"] == [{"price": plans["team"].price_id, "quantity": "5"}]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"tier": "free"}, "validation_error"),
        ({"tier": "gold"}, "validation_error"),
        ({}, "validation_error"),
        ({"tier": "team", "seats": 0}, "validation_error"),
        ({"tier": "pro", "seats": 3}, "plan_not_available"),
    ],
)
def test_bad_checkout_input_is_a_400_and_calls_no_stripe(auth_client, plans, fake_stripe, body, code):
    # given
    before = len(fake_stripe.requests)

    # when
    response = auth_client.post(CHECKOUT, body)

    # then
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert len(fake_stripe.requests) == before


def test_checkout_without_synced_plans_is_a_503(auth_client, fake_stripe):
    response = auth_client.post(CHECKOUT, {"tier": "pro"})

    assert response.status_code == 503
    assert response.json()["code"] == "plan_not_available"


def test_checkout_needs_authentication(api_client, plans):
    response = api_client.post(CHECKOUT, {"tier": "pro"})

    assert response.status_code == 401


def test_a_stripe_outage_is_a_502_with_a_stable_code(auth_client, plans, fake_stripe):
    # given
    fake_stripe.fail_next = 500

    # when
    response = auth_client.post(CHECKOUT, {"tier": "pro"})

    # then
    assert response.status_code == 502
    assert response.json()["code"] == "stripe_unavailable"
    assert "Traceback" not in response.content.decode()


@override_settings(STRIPE_SECRET_KEY="")
@pytest.mark.parametrize(("method", "path"), [("post", CHECKOUT), ("post", PORTAL), ("delete", SUBSCRIPTION)])
def test_without_stripe_configured_billing_answers_503(auth_client, method, path):
    response = getattr(auth_client, method)(path, {"tier": "pro"} if path == CHECKOUT else None)

    assert response.status_code == 503
    assert response.json()["code"] == "billing_not_configured"


@override_settings(STRIPE_SECRET_KEY="")
def test_without_stripe_configured_the_subscription_state_still_reads_free(auth_client):
    response = auth_client.get(SUBSCRIPTION)

    assert response.status_code == 200
    assert response.json()["tier"] == "free"
    assert response.json()["subscription"] is None


def test_portal_needs_a_customer_first(auth_client, plans):
    response = auth_client.post(PORTAL)

    assert response.status_code == 409
    assert response.json()["code"] == "no_customer"


def test_portal_link_for_the_users_customer(auth_client, user, plans, fake_stripe):
    # given
    customer = customer_get_or_create(user=user)

    # when
    response = auth_client.post(PORTAL)

    # then
    assert response.status_code == 200
    assert response.json()["portal_url"].startswith("https://billing.stripe.test/p/session/")
    _, _, params = [r for r in fake_stripe.requests if r[1] == "/v1/billing_portal/sessions"][-1]
    assert params["customer"] == customer.id


def test_cancel_without_a_subscription_is_a_404(auth_client, plans):
    response = auth_client.delete(SUBSCRIPTION)

    assert response.status_code == 404


def test_checkout_needs_a_verified_email_and_says_how_to_verify(api_client, make_user, plans, fake_stripe):
    # given an account whose address was never confirmed (tokens work for it)
    unverified = make_user("mallory@example.com")
    api_client.force_authenticate(unverified)
    stripe_calls = len(fake_stripe.requests)

    # when it tries to pay
    response = api_client.post(CHECKOUT, {"tier": "pro"})

    # then it is refused with a stable code and the way to verify, and Stripe is never called
    assert response.status_code == 403
    body = response.json()
    assert body["code"] == "email_not_verified"
    assert "/api/v1/auth/verify-email/resend" in body["message"]
    assert len(fake_stripe.requests) == stripe_calls
    assert not Customer.objects.filter(subscriber=unverified).exists()
