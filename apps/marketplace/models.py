"""Marketplace rows: plugins and their versions (package in blob storage), reviews, installs,
ratings, purchases, revenue events and developers' Stripe Connect accounts.

Statuses change only through ``transitions.py``; money is integer cents everywhere.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from apps.core.models import BaseModel

from .manifest import PluginCategory


class PluginStatus(models.TextChoices):
    UNLISTED = "unlisted", "Unlisted (no approved version yet)"
    LISTED = "listed", "Listed"
    SUSPENDED = "suspended", "Suspended"


class VersionStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    PENDING_REVIEW = "pending_review", "Pending review"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"


class Plugin(BaseModel):
    """A plugin as the catalog shows it; name, description, category and price follow the
    latest approved version's manifest."""

    slug = models.CharField(max_length=64, unique=True, help_text="The manifest id; the public plugin id.")
    developer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="plugins")
    name = models.CharField(max_length=80)
    description = models.TextField(max_length=2000)
    category = models.CharField(max_length=32, choices=[(c.value, c.value) for c in PluginCategory])
    price_cents = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=PluginStatus.choices, default=PluginStatus.UNLISTED)
    latest_version = models.ForeignKey(
        "PluginVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    listed_at = models.DateTimeField(null=True, blank=True)
    # Counters kept by the install and rating services, so catalog sorting needs no aggregation.
    install_count = models.PositiveIntegerField(default=0)
    rating_count = models.PositiveIntegerField(default=0)
    rating_avg = models.FloatField(null=True, blank=True)
    # Stored tsvector of name (A), description (B), category (C): written on approval, searched
    # through a GIN index (no per-row to_tsvector at query time).
    search_vector = SearchVectorField(null=True, editable=False)

    class Meta(BaseModel.Meta):
        indexes = [
            GinIndex(fields=["search_vector"], name="marketplace_plugin_search_gin"),
            models.Index(fields=["status", "category"], name="marketplace_plugin_status_idx"),
        ]
        permissions = [("suspend_plugin", "Can suspend or reinstate a listed plugin")]

    def __str__(self) -> str:
        return f"{self.name} ({self.slug})"


class PluginVersion(BaseModel):
    plugin = models.ForeignKey(Plugin, on_delete=models.CASCADE, related_name="versions")
    version = models.CharField(max_length=64)
    manifest = models.JSONField()
    status = models.CharField(max_length=16, choices=VersionStatus.choices, default=VersionStatus.DRAFT)
    package_key = models.CharField(max_length=255, blank=True)
    package_sha256 = models.CharField(max_length=64, blank=True)
    package_size = models.PositiveBigIntegerField(default=0)
    checklist = models.JSONField(default=list, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta(BaseModel.Meta):
        constraints = [models.UniqueConstraint(fields=["plugin", "version"], name="marketplace_version_unique")]
        indexes = [models.Index(fields=["status", "submitted_at"], name="marketplace_version_queue_idx")]
        permissions = [("review_pluginversion", "Can approve or reject plugin versions")]

    def __str__(self) -> str:
        return f"{self.plugin.slug}@{self.version}"


class ReviewDecision(models.TextChoices):
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    SUSPENDED = "suspended", "Suspended"
    REINSTATED = "reinstated", "Reinstated"


class PluginReview(BaseModel):
    """One decision by a reviewer (the history reviewers and developers read)."""

    plugin = models.ForeignKey(Plugin, on_delete=models.CASCADE, related_name="reviews")
    version = models.ForeignKey(PluginVersion, null=True, blank=True, on_delete=models.CASCADE, related_name="reviews")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    decision = models.CharField(max_length=16, choices=ReviewDecision.choices)
    notes = models.TextField()
    reviewed_at = models.DateTimeField()

    class Meta(BaseModel.Meta):
        ordering = ["-reviewed_at"]

    def __str__(self) -> str:
        return f"{self.decision} {self.version or self.plugin}"


class PluginInstall(BaseModel):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="plugin_installs")
    plugin = models.ForeignKey(Plugin, on_delete=models.CASCADE, related_name="installs")
    version = models.ForeignKey(PluginVersion, on_delete=models.PROTECT, related_name="installs")
    uninstalled_at = models.DateTimeField(null=True, blank=True)

    class Meta(BaseModel.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["user", "plugin"], condition=Q(uninstalled_at__isnull=True), name="marketplace_install_active"
            )
        ]


class PluginRating(BaseModel):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="plugin_ratings")
    plugin = models.ForeignKey(Plugin, on_delete=models.CASCADE, related_name="ratings")
    stars = models.PositiveSmallIntegerField(validators=[MinValueValidator(1), MaxValueValidator(5)])
    text = models.TextField(blank=True, max_length=2000)

    class Meta(BaseModel.Meta):
        constraints = [
            models.UniqueConstraint(fields=["user", "plugin"], name="marketplace_rating_once"),
            models.CheckConstraint(condition=Q(stars__gte=1, stars__lte=5), name="marketplace_rating_stars"),
        ]


class ConnectOnboarding(models.TextChoices):
    PENDING = "pending", "Onboarding started"
    COMPLETE = "complete", "Charges and payouts enabled"
    RESTRICTED = "restricted", "Restricted by Stripe"


class DeveloperAccount(BaseModel):
    """A developer's Stripe Connect (Express) account, created once."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="developer_account")
    stripe_account_id = models.CharField(max_length=255, unique=True)
    onboarding = models.CharField(max_length=16, choices=ConnectOnboarding.choices, default=ConnectOnboarding.PENDING)
    charges_enabled = models.BooleanField(default=False)
    payouts_enabled = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"{self.user} ({self.stripe_account_id})"


class PurchaseStatus(models.TextChoices):
    PENDING = "pending", "Awaiting payment"
    SUCCEEDED = "succeeded", "Paid"
    FAILED = "failed", "Payment failed"
    REFUNDED = "refunded", "Refunded in full"


class PluginPurchase(BaseModel):
    """A paid install: a Stripe destination charge to the developer's Connect account."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="plugin_purchases")
    plugin = models.ForeignKey(Plugin, on_delete=models.PROTECT, related_name="purchases")
    version = models.ForeignKey(PluginVersion, on_delete=models.PROTECT, related_name="purchases")
    developer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    destination_account_id = models.CharField(max_length=255)
    amount_cents = models.PositiveIntegerField()
    fee_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=16, choices=PurchaseStatus.choices, default=PurchaseStatus.PENDING)
    stripe_payment_intent_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    stripe_charge_id = models.CharField(max_length=255, blank=True, db_index=True)
    client_secret = models.CharField(max_length=255, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta(BaseModel.Meta):
        constraints = [
            # One purchase in flight per user and plugin; a retried install reuses it.
            models.UniqueConstraint(
                fields=["user", "plugin"], condition=Q(status="pending"), name="marketplace_purchase_one_pending"
            )
        ]

    @property
    def idempotency_key(self) -> str:
        return f"adiuva-plugin-purchase-{self.pk}"


class RevenueKind(models.TextChoices):
    SALE = "sale", "Sale"
    REFUND = "refund", "Refund"
    DISPUTE = "dispute", "Dispute"
    PAYOUT = "payout", "Payout"


class RevenueEvent(BaseModel):
    """One money movement for a developer, in integer cents. Sales are positive; refunds and
    disputes are negative (the reversed part); payouts carry the paid-out amount.

    ``stripe_id`` + ``kind`` is unique: a replayed webhook cannot record the same movement twice.
    """

    developer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="revenue_events")
    plugin = models.ForeignKey(Plugin, null=True, blank=True, on_delete=models.PROTECT, related_name="revenue_events")
    purchase = models.ForeignKey(
        PluginPurchase, null=True, blank=True, on_delete=models.PROTECT, related_name="revenue_events"
    )
    kind = models.CharField(max_length=16, choices=RevenueKind.choices)
    gross_cents = models.BigIntegerField()
    fee_cents = models.BigIntegerField(default=0)
    developer_cents = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    stripe_id = models.CharField(max_length=255)
    occurred_at = models.DateTimeField(db_index=True)

    class Meta(BaseModel.Meta):
        ordering = ["-occurred_at"]
        constraints = [models.UniqueConstraint(fields=["stripe_id", "kind"], name="marketplace_revenue_once")]
        indexes = [models.Index(fields=["developer", "occurred_at"], name="marketplace_revenue_dev_idx")]
