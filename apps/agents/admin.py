"""Staff views of agents: configs with their schedule state, runs (errors easy to find), outbox depth.

All read-only: configs change through their services (which keep ``next_run_at`` right), runs
and outbox rows are written by the scheduler and the executor. Outbox payloads are user content
encrypted with the user's key and are never shown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict

from django.contrib import admin
from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import HttpRequest

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

from apps.core.admin_base import ReadOnlyAdmin

from .models import AgentRunLog, CloudAgentConfig, LocalAgentConfig, OutboxItem, OutboxStatus, RunStatus

_CONFIG_FIELDS = ("name", "user", "enabled", "schedule_cron", "next_run_at", "last_run_at")


@admin.register(LocalAgentConfig)
class LocalAgentConfigAdmin(ReadOnlyAdmin):
    list_display = (*_CONFIG_FIELDS, "device_id", "waiting_for_device_since")
    list_filter = ("enabled", ("waiting_for_device_since", admin.EmptyFieldListFilter), "created_at")
    search_fields = ("id", "user__email", "device_id")  # names are sealed: not searchable in SQL
    list_select_related = ("user",)
    date_hierarchy = "next_run_at"


@admin.register(CloudAgentConfig)
class CloudAgentConfigAdmin(ReadOnlyAdmin):
    list_display = (*_CONFIG_FIELDS, "provider")
    list_filter = ("enabled", "provider", "created_at")
    search_fields = ("id", "user__email")
    list_select_related = ("user",)
    date_hierarchy = "next_run_at"
    exclude = ("sync_cursor",)


class HasErrorsFilter(admin.SimpleListFilter):
    """Runs that reported any error (including partial runs), or none."""

    title = "errors"
    parameter_name = "has_errors"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "With errors"), ("no", "Without errors")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        with_errors = Q(status=RunStatus.ERROR) | ~Q(errors=[])
        if self.value() == "yes":
            return queryset.filter(with_errors)
        if self.value() == "no":
            return queryset.exclude(with_errors)
        return queryset


@admin.register(AgentRunLog)
class AgentRunLogAdmin(ReadOnlyAdmin):
    list_display = (
        "started_at",
        "user",
        "agent_type",
        "agent_id",
        "status",
        "trigger",
        "items_processed",
        "items_created",
        "first_error",
        "completed_at",
    )
    list_filter = ("status", HasErrorsFilter, "agent_type", "trigger", "started_at")
    search_fields = ("id", "agent_id", "user__email", "device_id")
    list_select_related = ("user",)
    date_hierarchy = "started_at"

    @admin.display(description="first error")
    def first_error(self, run: AgentRunLog) -> str:
        return str(run.errors[0])[:120] if run.errors else ""


class _PendingCount(TypedDict):
    device_pending_count: int


@admin.register(OutboxItem)
class OutboxItemAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "user", "device_id", "table", "status", "attempts", "device_pending", "last_error")
    list_filter = ("status", "table")
    search_fields = ("id", "user__email", "device_id")
    list_select_related = ("user",)
    exclude = ("payload_ciphertext",)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        pending_same_device = (
            OutboxItem.objects.filter(
                user_id=OuterRef("user_id"), device_id=OuterRef("device_id"), status=OutboxStatus.PENDING
            )
            .values("user_id", "device_id")
            .annotate(n=Count("id"))
            .values("n")
        )
        depth = Coalesce(Subquery(pending_same_device, output_field=IntegerField()), Value(0))
        return super().get_queryset(request).annotate(device_pending_count=depth)

    @admin.display(description="pending for this device", ordering="device_pending_count")
    def device_pending(self, item: WithAnnotations[OutboxItem, _PendingCount]) -> int:
        return item.device_pending_count
