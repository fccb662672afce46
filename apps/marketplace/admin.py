"""Plugin review in the Django admin: the queue (pending first), the checklist, manifest and the
package's files read-only (each text file viewable, escaped), approve / reject actions with notes on
an intermediate page, suspend / reinstate, and the history.

Every decision goes through ``transitions.py``; the admin never writes a status itself. Reviewers
(the "Plugin reviewers" group) hold view permissions plus ``review_pluginversion`` and ``suspend_plugin``.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import Case, F, IntegerField, QuerySet, Value, When
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from apps.core.admin_base import ReadOnlyAdmin
from apps.core.errors import ApplicationError
from apps.storage.blob_store import blob_open

from .checklist import checklist_passed
from .models import (
    DeveloperAccount,
    Plugin,
    PluginPurchase,
    PluginReview,
    PluginStatus,
    PluginVersion,
    RevenueEvent,
    VersionStatus,
)
from .package_inspection import package_listing, package_text
from .transitions import plugin_listing_transition, plugin_version_transition


class DecisionForm(forms.Form):
    notes = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6, "cols": 80}),
        help_text="Shown to the developer with the decision.",
        strip=True,
    )


def _decision_action(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet,
    *,
    action: str,
    title: str,
    apply: Any,
) -> HttpResponse | None:
    """The admin's intermediate-page pattern: first show a notes form, then apply to each row."""
    form = DecisionForm(request.POST if "apply" in request.POST else None)
    if "apply" in request.POST and form.is_valid():
        done = 0
        for obj in queryset:
            try:
                apply(obj, request.user, form.cleaned_data["notes"])
            except ApplicationError as exc:
                modeladmin.message_user(request, f"{obj}: {exc.message}", messages.ERROR)
            else:
                done += 1
        if done:
            modeladmin.message_user(request, f"{title}: {done} done.", messages.SUCCESS)
        return None
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "action": action,
        "objects": queryset,
        "form": form,
        "opts": modeladmin.model._meta,
        "action_checkbox_name": ACTION_CHECKBOX_NAME,
        "media": modeladmin.media,
    }
    return TemplateResponse(request, "admin/marketplace/decision_confirmation.html", context)


class ReviewInline(admin.TabularInline):
    model = PluginReview
    fk_name = "version"
    extra = 0
    can_delete = False
    fields: ClassVar[tuple[str, ...]] = ("reviewed_at", "decision", "reviewer", "notes")
    readonly_fields = fields
    verbose_name_plural = "Decisions on this version"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReviewerActionsMixin:
    def has_review_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("marketplace.review_pluginversion")

    def has_suspend_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("marketplace.suspend_plugin")


@admin.register(PluginVersion)
class PluginVersionAdmin(ReviewerActionsMixin, ReadOnlyAdmin):
    """The review queue."""

    change_form_template = "admin/marketplace/pluginversion/change_form.html"
    list_display = ["plugin_name", "version", "developer", "status", "category", "checks", "submitted_at"]
    list_filter = ["status", "plugin__category"]
    search_fields = ["plugin__name", "plugin__slug", "plugin__developer__email"]
    list_select_related = ["plugin", "plugin__developer"]
    actions = ["approve_versions", "reject_versions"]
    inlines = [ReviewInline]
    fields: ClassVar[tuple[str, ...]] = (
        "plugin",
        "version",
        "status",
        "developer",
        "submitted_at",
        "decided_at",
        "package_summary",
        "package_files",
        "checklist_display",
        "manifest_display",
        "plugin_history",
    )
    readonly_fields = fields
    # The queue: pending first (oldest submission first), then the rest, newest first.
    ordering = [
        Case(
            When(status=VersionStatus.PENDING_REVIEW, then=Value(0)), default=Value(1), output_field=IntegerField()
        ).asc(),
        F("submitted_at").asc(nulls_last=True),
        F("created_at").desc(),
    ]

    @admin.display(description="plugin", ordering="plugin__name")
    def plugin_name(self, obj: PluginVersion) -> str:
        return obj.plugin.name

    @admin.display(description="developer", ordering="plugin__developer__email")
    def developer(self, obj: PluginVersion) -> str:
        return obj.plugin.developer.email

    @admin.display(description="category", ordering="plugin__category")
    def category(self, obj: PluginVersion) -> str:
        return obj.plugin.category

    @admin.display(description="checklist", boolean=True)
    def checks(self, obj: PluginVersion) -> bool | None:
        return checklist_passed(obj.checklist) if obj.checklist else None

    @admin.display(description="package")
    def package_summary(self, obj: PluginVersion) -> str:
        if not obj.package_key:
            return "not uploaded"
        return format_html("{} bytes, SHA-256 <code>{}</code>", obj.package_size, obj.package_sha256)

    @admin.display(description="files")
    def package_files(self, obj: PluginVersion) -> str:
        if not obj.package_key:
            return "not uploaded"
        try:
            with blob_open(key=obj.package_key) as handle:
                entries = package_listing(handle)
        except ApplicationError as exc:  # the blob went missing from storage
            return exc.message
        if not entries:
            return "no files (or not a readable zip)"
        file_url = reverse("admin:marketplace_pluginversion_file", args=[obj.pk])
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{} bytes</td><td>{}</td></tr>",
            (
                (
                    entry.path,
                    entry.size,
                    format_html('<a href="{}?{}">view</a>', file_url, urlencode({"path": entry.path}))
                    if entry.is_text
                    else "binary",
                )
                for entry in entries
            ),
        )
        return format_html('<table class="plugin-files">{}</table>', rows)

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.package_file_view)
        own = [path("<path:object_id>/file/", view, name="marketplace_pluginversion_file")]
        return [*own, *super().get_urls()]

    def package_file_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """One text file of the package, escaped by the template and cut at TEXT_PREVIEW_MAX_BYTES."""
        version = self.get_object(request, object_id)
        if version is None or not self.has_view_permission(request, version) or not version.package_key:
            raise Http404("No such plugin version or package.")
        try:
            with blob_open(key=version.package_key) as handle:
                preview = package_text(handle, request.GET.get("path", ""))
        except ApplicationError as exc:
            raise Http404(exc.message) from exc
        if preview is None:
            raise Http404("No such text file in the package.")
        context = {
            **self.admin_site.each_context(request),
            "title": f"{version.plugin.name} {version.version}: {preview.path}",
            "opts": self.model._meta,
            "original": version,
            "preview": preview,
        }
        return TemplateResponse(request, "admin/marketplace/pluginversion/package_file.html", context)

    @admin.display(description="security checklist")
    def checklist_display(self, obj: PluginVersion) -> str:
        if not obj.checklist:
            return "not computed (no package yet)"
        rows = format_html_join(
            "",
            '<tr><td class="{}">{}</td><td>{}</td><td>{}</td></tr>',
            (
                (
                    "check-pass" if item.get("passed") else "check-fail",
                    "✔ pass" if item.get("passed") else "✘ FAIL",
                    item.get("label", item.get("key")),
                    item.get("detail", ""),
                )
                for item in obj.checklist
            ),
        )
        return format_html('<table class="plugin-checklist">{}</table>', rows)

    @admin.display(description="manifest")
    def manifest_display(self, obj: PluginVersion) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.manifest, indent=2, sort_keys=True, ensure_ascii=False))

    @admin.display(description="plugin history (all decisions)")
    def plugin_history(self, obj: PluginVersion) -> str:
        reviews = PluginReview.objects.filter(plugin_id=obj.plugin_id).select_related("version", "reviewer")
        if not reviews:
            return "no decisions yet"
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                "<li>{} — <strong>{}</strong> {} by {}: {}</li>",
                (
                    (
                        f"{review.reviewed_at:%Y-%m-%d %H:%M}",
                        review.decision,
                        review.version.version if review.version else "(plugin)",
                        review.reviewer.email if review.reviewer else "—",
                        review.notes,
                    )
                    for review in reviews
                ),
            ),
        )

    @admin.action(description="Approve selected versions (with notes)", permissions=["review"])
    def approve_versions(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return _decision_action(
            self,
            request,
            queryset,
            action="approve_versions",
            title="Approve plugin versions",
            apply=lambda obj, user, notes: plugin_version_transition(
                version=obj, to_status=VersionStatus.APPROVED, actor=user, notes=notes
            ),
        )

    @admin.action(description="Reject selected versions (with notes)", permissions=["review"])
    def reject_versions(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return _decision_action(
            self,
            request,
            queryset,
            action="reject_versions",
            title="Reject plugin versions",
            apply=lambda obj, user, notes: plugin_version_transition(
                version=obj, to_status=VersionStatus.REJECTED, actor=user, notes=notes
            ),
        )


class PluginHistoryInline(ReviewInline):
    fk_name = "plugin"
    fields = ("reviewed_at", "decision", "version", "reviewer", "notes")
    readonly_fields = fields
    verbose_name_plural = "History: every decision"


@admin.register(Plugin)
class PluginAdmin(ReviewerActionsMixin, ReadOnlyAdmin):
    list_display = ["name", "slug", "developer", "status", "category", "price_cents", "install_count", "rating_avg"]
    list_filter = ["status", "category"]
    search_fields = ["name", "slug", "developer__email"]
    list_select_related = ["developer", "latest_version"]
    actions = ["suspend_plugins", "reinstate_plugins"]
    inlines = [PluginHistoryInline]
    exclude = ["search_vector"]

    @admin.action(description="Suspend selected plugins (hide, no new installs)", permissions=["suspend"])
    def suspend_plugins(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return _decision_action(
            self,
            request,
            queryset,
            action="suspend_plugins",
            title="Suspend plugins",
            apply=lambda obj, user, notes: plugin_listing_transition(
                plugin=obj, to_status=PluginStatus.SUSPENDED, actor=user, notes=notes
            ),
        )

    @admin.action(description="Reinstate selected suspended plugins", permissions=["suspend"])
    def reinstate_plugins(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return _decision_action(
            self,
            request,
            queryset,
            action="reinstate_plugins",
            title="Reinstate plugins",
            apply=lambda obj, user, notes: plugin_listing_transition(
                plugin=obj, to_status=PluginStatus.LISTED, actor=user, notes=notes
            ),
        )


@admin.register(PluginReview)
class PluginReviewAdmin(ReadOnlyAdmin):
    list_display = ["reviewed_at", "plugin", "version", "decision", "reviewer"]
    list_filter = ["decision"]
    search_fields = ["plugin__name", "plugin__slug", "reviewer__email", "notes"]
    list_select_related = ["plugin", "version", "reviewer"]


@admin.register(PluginPurchase)
class PluginPurchaseAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "user", "plugin", "amount_cents", "fee_cents", "currency", "status"]
    list_filter = ["status", "currency"]
    search_fields = ["user__email", "plugin__slug", "stripe_payment_intent_id", "stripe_charge_id"]
    list_select_related = ["user", "plugin"]
    exclude = ["client_secret"]


@admin.register(RevenueEvent)
class RevenueEventAdmin(ReadOnlyAdmin):
    list_display = ["occurred_at", "developer", "plugin", "kind", "gross_cents", "fee_cents", "developer_cents"]
    list_filter = ["kind", "currency"]
    search_fields = ["developer__email", "plugin__slug", "stripe_id"]
    list_select_related = ["developer", "plugin"]
    date_hierarchy = "occurred_at"


@admin.register(DeveloperAccount)
class DeveloperAccountAdmin(ReadOnlyAdmin):
    list_display = ["user", "stripe_account_id", "onboarding", "charges_enabled", "payouts_enabled"]
    list_filter = ["onboarding"]
    search_fields = ["user__email", "stripe_account_id"]
    list_select_related = ["user"]
