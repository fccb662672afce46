"""Staff view of OAuth grants: status and timestamps, never tokens (not even their ciphertext)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.core.admin_base import ReadOnlyAdmin

from .grants import grant_mark_needs_reconnect
from .models import GrantStatus, OAuthGrant


@admin.register(OAuthGrant)
class OAuthGrantAdmin(ReadOnlyAdmin):
    list_display = (
        "user",
        "provider",
        "status",
        "status_reason",
        "access_expires_at",
        "last_refreshed_at",
        "updated_at",
    )
    list_filter = ("status", "provider")
    search_fields = ("user__email", "id")
    # token_ciphertext is left out on purpose.
    fields = (
        "id",
        "user",
        "provider",
        "status",
        "status_reason",
        "scopes",
        "access_expires_at",
        "last_refreshed_at",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields
    list_select_related = ("user",)
    actions = ["mark_needs_reconnect"]

    @admin.action(description="Mark needs reconnect (the user is asked to authorize again)")
    def mark_needs_reconnect(self, request: HttpRequest, queryset: QuerySet[OAuthGrant]) -> None:
        marked = 0
        for grant in queryset.filter(status=GrantStatus.ACTIVE):
            grant_mark_needs_reconnect(grant=grant, reason=f"Marked by staff ({request.user}).", actor=request.user)
            marked += 1
        self.message_user(request, f"{marked} grant(s) marked needs reconnect.", messages.SUCCESS)
