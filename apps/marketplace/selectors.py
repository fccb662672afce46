"""Reads of the marketplace: the catalog (full-text search on the stored vector), a plugin's
listing, a developer's plugins and versions, and earnings per month."""

from __future__ import annotations

import datetime as dt
import re
from enum import StrEnum
from typing import Any, NamedTuple

from django.contrib.postgres.search import SearchQuery, SearchRank
from django.db.models import F, Prefetch, QuerySet, Sum

from apps.core.errors import ApplicationError, NotFoundError

from .error_codes import MarketplaceErrorCode
from .models import Plugin, PluginReview, PluginStatus, PluginVersion, RevenueEvent, RevenueKind
from .transitions import SEARCH_CONFIG


class CatalogSort(StrEnum):
    RATING = "rating"
    INSTALLS = "installs"
    NEWEST = "newest"
    RELEVANCE = "relevance"


def catalog_queryset() -> QuerySet[Plugin]:
    """Listed plugins (approved, not suspended) with their listed version."""
    return Plugin.objects.filter(status=PluginStatus.LISTED, latest_version__isnull=False).select_related(
        "latest_version"
    )


def catalog_search(*, category: str | None = None, q: str | None = None, sort: str | None = None) -> QuerySet[Plugin]:
    plugins = catalog_queryset()
    if category:
        plugins = plugins.filter(category=category)
    order: list[Any]
    if q:
        query = SearchQuery(q, search_type="websearch", config=SEARCH_CONFIG)
        # ``search_vector @@ query`` uses the GIN index; the rank is computed for matches only.
        plugins = plugins.filter(search_vector=query).annotate(rank=SearchRank(F("search_vector"), query))
    sort = sort or (CatalogSort.RELEVANCE if q else CatalogSort.NEWEST)
    if sort == CatalogSort.RELEVANCE and q:
        order = [F("rank").desc(), F("install_count").desc()]
    elif sort == CatalogSort.RATING:
        order = [F("rating_avg").desc(nulls_last=True), F("rating_count").desc()]
    elif sort == CatalogSort.INSTALLS:
        order = [F("install_count").desc()]
    else:
        order = [F("listed_at").desc(nulls_last=True)]
    return plugins.order_by(*order, "slug")


def catalog_plugin_get(*, slug: str) -> Plugin:
    plugin = catalog_queryset().filter(slug=slug).first()
    if plugin is None:
        raise NotFoundError("Plugin")
    return plugin


def developer_plugins(*, developer: Any) -> QuerySet[Plugin]:
    reviews = PluginReview.objects.select_related("reviewer").order_by("-reviewed_at")
    versions = PluginVersion.objects.order_by("-created_at").prefetch_related(Prefetch("reviews", queryset=reviews))
    return (
        Plugin.objects.filter(developer=developer)
        .select_related("latest_version")
        .prefetch_related(Prefetch("versions", queryset=versions))
        .order_by("-created_at")
    )


def developer_plugin_get(*, developer: Any, slug: str) -> Plugin:
    plugin = developer_plugins(developer=developer).filter(slug=slug).first()
    if plugin is None:
        raise NotFoundError("Plugin")
    return plugin


class Earnings(NamedTuple):
    period: str
    currency: str
    sales: int
    gross_cents: int
    platform_fee_cents: int
    developer_share_cents: int
    refunds_cents: int
    disputes_cents: int
    net_cents: int
    payouts_cents: int


_PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def period_bounds(period: str) -> tuple[dt.datetime, dt.datetime]:
    """``YYYY-MM`` → [first instant of the month, first instant of the next) in UTC."""
    match = _PERIOD.match(period or "")
    if match is None:
        raise ApplicationError(
            MarketplaceErrorCode.INVALID_PERIOD,
            "period must be a month as YYYY-MM.",
            fields={"period": ["Expected YYYY-MM."]},
        )
    year, month = int(match.group(1)), int(match.group(2))
    start = dt.datetime(year, month, 1, tzinfo=dt.UTC)
    end = dt.datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=dt.UTC)
    return start, end


def developer_earnings(*, developer: Any, period: str, currency: str) -> Earnings:
    """Totals of a developer's revenue events in one month, integer cents.

    refunds/disputes are the developer share reversed (positive numbers);
    net = developer share - refunds - disputes; payouts are what Stripe paid out that month.
    """
    start, end = period_bounds(period)
    events = RevenueEvent.objects.filter(developer=developer, occurred_at__gte=start, occurred_at__lt=end)

    def total(kind: RevenueKind, field: str) -> int:
        return int(events.filter(kind=kind).aggregate(total=Sum(field))["total"] or 0)

    sales = events.filter(kind=RevenueKind.SALE)
    share = total(RevenueKind.SALE, "developer_cents")
    refunds = -total(RevenueKind.REFUND, "developer_cents")
    disputes = -total(RevenueKind.DISPUTE, "developer_cents")
    return Earnings(
        period=period,
        currency=currency,
        sales=sales.count(),
        gross_cents=total(RevenueKind.SALE, "gross_cents"),
        platform_fee_cents=total(RevenueKind.SALE, "fee_cents"),
        developer_share_cents=share,
        refunds_cents=refunds,
        disputes_cents=disputes,
        net_cents=share - refunds - disputes,
        payouts_cents=total(RevenueKind.PAYOUT, "developer_cents"),
    )
