"""Staff views of billing: payment failures and entitlements (dj-stripe registers its own models)."""

from django.contrib import admin

from apps.core.admin_base import ReadOnlyAdmin

from .models import BillingAccount, PaymentFailure


class WebhookRowAdmin(ReadOnlyAdmin):
    """Rows written by webhooks only; staff change plans in Stripe, never here."""

    allow_delete = True


@admin.register(PaymentFailure)
class PaymentFailureAdmin(WebhookRowAdmin):
    list_display = ["invoice_id", "user", "amount_due", "currency", "attempt_count", "created_at", "resolved_at"]
    list_filter = [("resolved_at", admin.EmptyFieldListFilter), "currency"]
    search_fields = ["user__email", "invoice_id", "subscription_id"]
    list_select_related = ["user"]


@admin.register(BillingAccount)
class BillingAccountAdmin(WebhookRowAdmin):
    list_display = ["user", "user_tier", "seats", "subscription_id", "subscription_status", "synced_at"]
    list_filter = ["user__tier", "subscription_status"]
    search_fields = ["user__email", "subscription_id"]
    list_select_related = ["user"]

    @admin.display(description="tier", ordering="user__tier")
    def user_tier(self, obj: BillingAccount) -> str:
        return obj.user.tier
