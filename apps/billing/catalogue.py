"""The plan catalogue: the paid tiers' products and monthly prices, created or updated in Stripe
idempotently and mirrored into dj-stripe (``manage.py billing_sync_plans``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import stripe
from django.conf import settings
from djstripe.models import Price, Product

from apps.accounts.models import Tier

from . import tiers
from .stripe_client import stripe_api_key, stripe_errors


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
