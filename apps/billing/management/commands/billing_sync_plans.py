"""Create or update the pro/power/team products and monthly prices in Stripe, then mirror them."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from apps.billing.catalogue import stripe_plans_sync


class Command(BaseCommand):
    help = "Create or sync the paid plans' products and prices in Stripe (idempotent) and mirror them locally."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--currency", help="ISO currency code (default: BILLING_CURRENCY).")

    def handle(self, *args: object, currency: str | None = None, **options: object) -> None:
        for result in stripe_plans_sync(currency=currency):
            action = "created" if result.created else "unchanged"
            self.stdout.write(f"{result.tier}: product {result.product_id}, price {result.price_id} ({action})")
