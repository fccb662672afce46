"""Staff views of billing: payment failures and entitlements (dj-stripe registers its own models)."""

from django.contrib import admin
from django.http import HttpRequest

from .models import BillingAccount, PaymentFailure


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written by webhooks only; staff change plans in Stripe, never here."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(PaymentFailure)
class PaymentFailureAdmin(ReadOnlyAdmin):
    list_display = ["invoice_id", "user", "amount_due", "currency", "attempt_count", "created_at", "resolved_at"]
    list_filter = [("resolved_at", admin.EmptyFieldListFilter), "currency"]
    search_fields = ["user__email", "invoice_id", "subscription_id"]
    list_select_related = ["user"]


@admin.register(BillingAccount)
class BillingAccountAdmin(ReadOnlyAdmin):
    list_display = ["user", "user_tier", "seats", "subscription_id", "subscription_status", "synced_at"]
    list_filter = ["user__tier", "subscription_status"]
    search_fields = ["user__email", "subscription_id"]
    list_select_related = ["user"]

    @admin.display(description="tier", ordering="user__tier")
    def user_tier(self, obj: BillingAccount) -> str:
        return obj.user.tier
