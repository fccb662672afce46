"""Staff view of issued SSO codes (hashes only; read-only)."""

from django.contrib import admin

from apps.core.admin_base import ReadOnlyAdmin

from .models import SsoCode


@admin.register(SsoCode)
class SsoCodeAdmin(ReadOnlyAdmin):
    list_display = ("user", "created_at", "expires_at", "used_at")
    list_select_related = ("user",)
    search_fields = ("user__email",)
    exclude = ("code_hash",)
