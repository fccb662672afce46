"""Marketplace: plugin submissions, staff review in the admin, the catalog, installs, and the
70/30 revenue share through Stripe Connect."""

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class MarketplaceConfig(AppConfig):
    name = "apps.marketplace"
    label = "marketplace"
    verbose_name = "Plugin marketplace"

    def ready(self) -> None:
        from . import webhook_handlers
        from .reviewers import reviewers_group_ensure

        webhook_handlers.connect()
        post_migrate.connect(reviewers_group_ensure, sender=self, dispatch_uid="marketplace.reviewers_group")
