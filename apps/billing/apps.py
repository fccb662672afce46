"""Billing: Stripe subscriptions through dj-stripe, tiers, feature gates and rate limits."""

from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "apps.billing"
    label = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        # dj-stripe (earlier in INSTALLED_APPS) connects its syncing handlers first; ours run after.
        from . import team_seats, webhook_handlers

        webhook_handlers.connect()

        from apps.accounts.deletion import register_account_eraser

        from .erasure import billing_erase_user

        register_account_eraser("billing", billing_erase_user)
        team_seats.connect()
