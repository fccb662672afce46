"""Billing fixtures: a fake Stripe on loopback, the synced plans, a webhook endpoint, signed delivery."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import stripe
from django.test import Client
from djstripe.models import WebhookEndpoint

from apps.billing.catalogue import stripe_plans_sync
from apps.billing.webhooks import webhook_endpoint_create
from apps.devices.tests.conftest import device_server, devices, fast_device_settings  # noqa: F401  (usage_notice)

from .fake_stripe import FakeStripe, sign

WEBHOOK_PATH = "/api/v1/billing/webhook"


@pytest.fixture
def user(make_user):
    """Billing's user has verified their address (checkout requires it)."""
    return make_user("alice@example.com", email_verified=True)


@pytest.fixture
def fake_stripe(monkeypatch) -> Iterator[FakeStripe]:
    server = FakeStripe().start()
    # Point the real stripe library at the fake: the HTTP boundary is the only thing replaced.
    monkeypatch.setattr(stripe, "api_base", server.url)
    monkeypatch.setattr(stripe, "max_network_retries", 0)
    yield server
    server.stop()
    assert server.unknown == [], f"unexpected Stripe calls: {server.unknown}"


@pytest.fixture
def plans(fake_stripe, db):
    return {result.tier: result for result in stripe_plans_sync()}


@pytest.fixture
def webhook_endpoint(fake_stripe, db) -> WebhookEndpoint:
    return webhook_endpoint_create(base_url="https://api.example.test", contract_path=True)


Deliver = Callable[..., "object"]


@pytest.fixture
def deliver(webhook_endpoint) -> Deliver:
    """POST an event to the contract webhook path, signed with the endpoint's secret."""

    def post(event: dict, *, secret: str | None = None, signature: str | None = "sign", client: Client | None = None):
        payload = json.dumps(event)
        headers: dict[str, Any] = {}
        if signature == "sign":
            headers["HTTP_STRIPE_SIGNATURE"] = sign(payload, secret or webhook_endpoint.secret)
        elif signature is not None:
            headers["HTTP_STRIPE_SIGNATURE"] = signature
        return (client or Client()).post(WEBHOOK_PATH, data=payload, content_type="application/json", **headers)

    return post
