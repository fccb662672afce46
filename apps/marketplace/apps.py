"""Marketplace: plugin submissions, staff review in the admin, the catalog, installs, and the
70/30 revenue share through Stripe Connect."""

from django.apps import AppConfig


class MarketplaceConfig(AppConfig):
    name = "apps.marketplace"
    label = "marketplace"
    verbose_name = "Plugin marketplace"

    def ready(self) -> None:
        from . import webhook_handlers

        webhook_handlers.connect()
