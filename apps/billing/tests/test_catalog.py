"""The plan catalogue command: products and prices in Stripe, idempotent, mirrored by dj-stripe."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from djstripe.models import Price, Product

from apps.billing import tiers
from apps.billing.selectors import price_for_tier

pytestmark = pytest.mark.django_db


def test_sync_creates_a_monthly_price_per_paid_tier_and_mirrors_it(fake_stripe):
    # when
    call_command("billing_sync_plans")

    # then
    for tier, cents in [("pro", 1500), ("power", 2900), ("team", 4900)]:
        price = price_for_tier(tier=tier)
        assert price is not None
        assert price.lookup_key == tiers.price_lookup_key(tier)
        assert price.unit_amount == cents
        assert price.stripe_data["recurring"]["interval"] == "month"
        assert price.product.id == f"adiuva_{tier}"
        assert price.metadata[tiers.TIER_METADATA_KEY] == tier
    assert Product.objects.count() == 3


def test_sync_twice_creates_nothing_new(fake_stripe):
    # given
    call_command("billing_sync_plans")

    # when
    call_command("billing_sync_plans")

    # then
    assert fake_stripe.count("POST", "/v1/products") == 3
    assert fake_stripe.count("POST", "/v1/prices") == 3
    assert Price.objects.count() == 3


def test_a_changed_amount_moves_the_lookup_key_to_a_new_price_and_archives_the_old(fake_stripe, monkeypatch):
    # given
    call_command("billing_sync_plans")
    old = price_for_tier(tier="pro")
    monkeypatch.setitem(tiers.PLAN_PRICES, "pro", 1900)

    # when
    call_command("billing_sync_plans")

    # then
    new = price_for_tier(tier="pro")
    assert new.id != old.id
    assert new.unit_amount == 1900
    old.refresh_from_db()
    assert old.active is False
    assert old.lookup_key in (None, "")
