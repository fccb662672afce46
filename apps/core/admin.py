"""The admin site's own name, and the staff view of the audit trail (read-only, never edited or
deleted here)."""

from django.contrib import admin

from .admin_base import ReadOnlyAdmin
from .models import AuditEvent

admin.site.site_header = "Adiuva administration"
admin.site.site_title = "Adiuva admin"
admin.site.index_title = "Operations"


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "action", "actor", "subject_user", "target_type", "target_id"]
    list_filter = ["action", "target_type"]
    search_fields = ["actor__email", "subject_user__email", "target_id", "action"]
    date_hierarchy = "created_at"
    list_select_related = ["actor", "subject_user"]
    readonly_fields = ["id", "created_at", "action", "actor", "subject_user", "target_type", "target_id", "data"]
