"""Staff views of storage metadata; blobs are client ciphertext and never shown or fetched."""

from django.contrib import admin

from .models import Backup, StorageRecord, VectorItem


class MetadataOnlyAdmin(admin.ModelAdmin):
    """Read-only: staff see metadata; rows change only through the API's services."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # deleting here would orphan the blob; users delete through the API


@admin.register(StorageRecord)
class StorageRecordAdmin(MetadataOnlyAdmin):
    list_display = ("id", "user", "table", "size_bytes", "created_at", "updated_at")
    list_filter = ("table",)
    search_fields = ("id", "user__email", "table")
    readonly_fields = ("id", "user", "table", "blob_key", "checksum", "size_bytes", "created_at", "updated_at")
    list_select_related = ("user",)


@admin.register(VectorItem)
class VectorItemAdmin(MetadataOnlyAdmin):
    list_display = ("item_id", "user", "size_bytes", "created_at", "updated_at")
    search_fields = ("item_id", "user__email")
    # ``blob`` and ``vector`` are left out on purpose: metadata only.
    fields = ("id", "user", "item_id", "checksum", "size_bytes", "created_at", "updated_at")
    readonly_fields = fields
    list_select_related = ("user",)


@admin.register(Backup)
class BackupAdmin(MetadataOnlyAdmin):
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
