"""The one read-only admin base: rows written by services, looked at (and maybe deleted) by staff."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest


class ReadOnlyAdmin(admin.ModelAdmin):
    """Staff can list and open rows; they change only through the services that own them.

    ``allow_delete`` keeps the delete action for rows whose deletion is safe from the admin.
    """

    allow_delete = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return self.allow_delete and super().has_delete_permission(request, obj)
