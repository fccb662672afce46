"""Staff view of devices and their presence (read-only: presence belongs to the socket)."""

from django.contrib import admin

from apps.core.admin_base import ReadOnlyAdmin

from .models import Device


@admin.register(Device)
class DeviceAdmin(ReadOnlyAdmin):
    list_display = ("device_id", "user", "name", "platform", "is_online", "last_seen_at", "first_seen_at")
    list_filter = ("is_online", "platform")
    search_fields = ("device_id", "user__email", "name")
    readonly_fields = [f.name for f in Device._meta.fields]
    ordering = ("-last_seen_at",)
    allow_delete = True  # a stale device row may go; the socket writes a new one on its next hello
