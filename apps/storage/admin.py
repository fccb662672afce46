"""Staff views of storage metadata; blobs are client ciphertext and never shown or fetched.

Read-only and never deleted here: deleting a row in the admin would orphan its blob; users delete
through the API's services."""

from django.contrib import admin

from apps.core.admin_base import ReadOnlyAdmin

from .models import Backup, StorageRecord, VectorItem


@admin.register(StorageRecord)
class StorageRecordAdmin(ReadOnlyAdmin):
    list_display = ("id", "user", "table", "size_bytes", "created_at", "updated_at")
    list_filter = ("table",)
    search_fields = ("id", "user__email", "table")
    readonly_fields = ("id", "user", "table", "blob_key", "checksum", "size_bytes", "created_at", "updated_at")
    list_select_related = ("user",)


@admin.register(VectorItem)
class VectorItemAdmin(ReadOnlyAdmin):
    list_display = ("item_id", "user", "size_bytes", "created_at", "updated_at")
    search_fields = ("item_id", "user__email")
    # ``blob`` and ``vector`` are left out on purpose: metadata only.
    fields = ("id", "user", "item_id", "checksum", "size_bytes", "created_at", "updated_at")
    readonly_fields = fields
    list_select_related = ("user",)


@admin.register(Backup)
class BackupAdmin(ReadOnlyAdmin):
    list_display = ("id", "user", "version", "status", "size_bytes", "created_at", "completed_at")
    list_filter = ("status",)
    search_fields = ("id", "user__email")
    readonly_fields = (
        "id",
        "user",
        "version",
        "timestamp",
        "checksum",
        "size_bytes",
        "blob_key",
        "status",
        "multipart_upload_id",
        "created_at",
        "updated_at",
        "completed_at",
    )
    list_select_related = ("user",)
