"""What billing keeps beside dj-stripe's mirror: the seats a user's plan grants, failed payments."""

from __future__ import annotations

from django.conf import settings
from django.db import models

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
