"""What billing keeps beside dj-stripe's mirror: the seats a user's plan grants, failed payments,
and the metering of model calls (tokens per call, per day, per month; budget overrides)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from apps.core.models import BaseModel


class BillingAccount(BaseModel):
    """The entitlement derived from the user's subscription; written only by ``user_tier_sync``.

    ``User.tier`` holds the tier itself; this row holds what the tier alone can't say: the team
    seats (per-seat rate limits) and which Stripe subscription granted them.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="billing_account")
    seats = models.PositiveIntegerField(default=1)
    subscription_id = models.CharField(max_length=255, blank=True)
    subscription_status = models.CharField(max_length=32, blank=True)
    synced_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"billing of {self.user_id}"


class PaymentFailure(BaseModel):
    """A failed invoice payment (``invoice.payment_failed``); open until the invoice is paid."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="payment_failures")
    invoice_id = models.CharField(max_length=255, unique=True)
    subscription_id = models.CharField(max_length=255, blank=True)
    amount_due = models.PositiveIntegerField(help_text="In the currency's smallest unit (cents).")
    currency = models.CharField(max_length=3)
    attempt_count = models.PositiveIntegerField(default=0)
    next_payment_attempt = models.DateTimeField(null=True, blank=True)
    hosted_invoice_url = models.URLField(max_length=2048, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta(BaseModel.Meta):
        indexes = [models.Index(fields=["user", "resolved_at"], name="billing_failure_open_idx")]

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None

    def __str__(self) -> str:
        return f"payment failure on {self.invoice_id}"


class LlmUsage(models.Model):
    """One model call's tokens as the provider reported them; append-only, never the content.

    ``call_id`` is ours, one per model call, unique: recording the same call twice (a stream
    settled both at its end and at its close) leaves one row.
    """

    id = models.BigAutoField(primary_key=True)
    call_id = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    model = models.CharField(max_length=200)
    purpose = models.CharField(max_length=32)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cached_tokens = models.PositiveIntegerField(default=0)
    run_id = models.CharField(max_length=64, blank=True)
    # True when the provider never reported usage (a stream cut short): the row holds our estimate.
    estimated = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "created_at"], name="billing_llmusage_user_idx")]

    def __str__(self) -> str:
        return f"{self.purpose} call of {self.user_id} on {self.model}"

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class LlmUsageDaily(models.Model):
    """The roll-up of one user's calls of one day, model and purpose (kept after raw rows are pruned)."""

    id = models.BigAutoField(primary_key=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    model = models.CharField(max_length=200)
    purpose = models.CharField(max_length=32)
    calls = models.PositiveIntegerField(default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    cached_tokens = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["-day"]
        constraints = [
            models.UniqueConstraint(fields=["user", "day", "model", "purpose"], name="billing_llmdaily_unique")
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.purpose} of {self.user_id} on {self.model}"


class LlmBudgetPeriod(models.Model):
    """A user's tokens used in one calendar month (UTC): the row the budget check locks."""

    id = models.BigAutoField(primary_key=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    period = models.DateField(help_text="The first day of the month.")
    used_tokens = models.BigIntegerField(default=0)
    # When the user was told they crossed the notice share of their budget (once per period).
    notified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-period"]
        constraints = [models.UniqueConstraint(fields=["user", "period"], name="billing_llmperiod_unique")]

    def __str__(self) -> str:
        return f"{self.period:%Y-%m} of {self.user_id}"


class LlmReservation(models.Model):
    """Tokens held by a request in flight, so racing requests can't all spend the same remainder.

    Deleted when the request ends; one left by a crashed process stops counting after
    ``LLM_BUDGET_RESERVATION_TTL`` seconds.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    tokens = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["user", "created_at"], name="billing_llmreserve_user_idx")]

    def __str__(self) -> str:
        return f"{self.tokens} tokens held for {self.user_id}"


class LlmBudgetOverride(BaseModel):
    """Staff's monthly token budget for one user, in place of their tier's."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="llm_budget_override")
    monthly_tokens = models.BigIntegerField(help_text="Tokens per calendar month; 0 stops every model call.")

    def __str__(self) -> str:
        return f"budget override of {self.user_id}: {self.monthly_tokens}"
