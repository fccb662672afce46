"""Staff view of devices and their presence (read-only: presence belongs to the socket)."""

from django.contrib import admin

from .models import Device


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    list_display = ("device_id", "user", "name", "platform", "is_online", "last_seen_at", "first_seen_at")
    list_filter = ("is_online", "platform")
    search_fields = ("device_id", "user__email", "name")
    readonly_fields = [f.name for f in Device._meta.fields]
    ordering = ("-last_seen_at",)

    def has_add_permission(self, request) -> bool:
        return False
