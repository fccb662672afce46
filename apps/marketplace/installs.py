"""Users' writes on the catalog: install (free at once, paid after payment), uninstall, ratings."""

from __future__ import annotations

from typing import Any, NamedTuple

from django.db import IntegrityError, transaction
from django.db.models import Avg, Count

from apps.billing.tiers import Feature, require_feature
from apps.core.errors import ApplicationError, NotFoundError

from .error_codes import MarketplaceErrorCode
from .install_rows import active_install, install_create_locked, install_revoke_locked
from .models import (
    Plugin,
    PluginInstall,
    PluginPurchase,
    PluginRating,
    PluginStatus,
    PurchaseStatus,
)
from .payments import purchase_start


class InstallOutcome(NamedTuple):
    """Either the install (free, already paid, or already installed) or the purchase to pay."""

    install: PluginInstall | None
    purchase: PluginPurchase | None


def plugin_for_install(*, slug: str, lock: bool = False) -> Plugin:
    """A listed plugin; never approved → 404 ``plugin_not_available``, suspended → 409 ``plugin_suspended``."""
    queryset = Plugin.objects.select_related("latest_version", "developer")
    if lock:
        queryset = queryset.select_for_update(of=("self",))
    plugin = queryset.filter(slug=slug).first()
    if plugin is None:
        raise NotFoundError("Plugin")
    if plugin.status == PluginStatus.SUSPENDED:
        raise ApplicationError(
            MarketplaceErrorCode.PLUGIN_SUSPENDED, "This plugin is suspended and cannot be installed.", status=409
        )
    if plugin.status != PluginStatus.LISTED or plugin.latest_version is None:
        raise ApplicationError(
            MarketplaceErrorCode.PLUGIN_NOT_AVAILABLE, "This plugin has no approved version.", status=404
        )
    return plugin


def _paid_for(*, user: Any, plugin: Plugin) -> bool:
    return PluginPurchase.objects.filter(user=user, plugin=plugin, status=PurchaseStatus.SUCCEEDED).exists()


def plugin_install(*, user: Any, slug: str) -> InstallOutcome:
    """Free plugins (and ones already bought, and a developer's own) install now; a paid one is
    charged to the default card off-session and installs now, or answers the purchase to pay and
    installs when Stripe reports the payment (webhook)."""
    require_feature(user, Feature.PLUGIN_MARKETPLACE)
    with transaction.atomic():
        plugin = plugin_for_install(slug=slug, lock=True)
        if (
            plugin.price_cents == 0
            or plugin.developer_id == user.pk
            or active_install(user=user, plugin=plugin)
            or _paid_for(user=user, plugin=plugin)
        ):
            return InstallOutcome(install=install_create_locked(user=user, plugin=plugin), purchase=None)
    purchase = purchase_start(user=user, plugin=plugin)
    if purchase.status == PurchaseStatus.SUCCEEDED:  # charged off-session, installed by the settlement
        install = active_install(user=user, plugin=plugin)
        if install is not None:
            return InstallOutcome(install=install, purchase=purchase)
    return InstallOutcome(install=None, purchase=purchase)


def plugin_uninstall(*, user: Any, slug: str) -> None:
    with transaction.atomic():
        plugin = Plugin.objects.select_for_update().filter(slug=slug).first()
        install = active_install(user=user, plugin=plugin) if plugin else None
        if install is None:
            raise ApplicationError(MarketplaceErrorCode.NOT_INSTALLED, "This plugin is not installed.", status=404)
        install_revoke_locked(install=install)


def _rating_totals_refresh(*, plugin: Plugin) -> None:
    totals = PluginRating.objects.filter(plugin=plugin).aggregate(count=Count("id"), avg=Avg("stars"))
    Plugin.objects.filter(pk=plugin.pk).update(rating_count=totals["count"], rating_avg=totals["avg"])


def plugin_rate(*, user: Any, slug: str, stars: int, text: str = "", update: bool = False) -> PluginRating:
    """Rate a plugin the user has installed: once (409 ``already_rated`` after), then update only."""
    require_feature(user, Feature.PLUGIN_MARKETPLACE)
    with transaction.atomic():
        plugin = Plugin.objects.select_for_update().filter(slug=slug).first()
        if plugin is None or plugin.latest_version_id is None:
            raise NotFoundError("Plugin")
        if active_install(user=user, plugin=plugin) is None:
            raise ApplicationError(
                MarketplaceErrorCode.NOT_INSTALLED, "Only users who installed this plugin can rate it.", status=403
            )
        if update:
            rating = PluginRating.objects.select_for_update().filter(user=user, plugin=plugin).first()
            if rating is None:
                raise NotFoundError("Rating")
            rating.stars, rating.text = stars, text
            rating.save(update_fields=["stars", "text", "updated_at"])
        else:
            try:
                with transaction.atomic():
                    rating = PluginRating.objects.create(user=user, plugin=plugin, stars=stars, text=text)
            except IntegrityError:
                raise ApplicationError(
                    MarketplaceErrorCode.ALREADY_RATED,
                    "You already rated this plugin; update your rating with PUT.",
                    status=409,
                ) from None
        _rating_totals_refresh(plugin=plugin)
        return rating
