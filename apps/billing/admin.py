"""Staff views of billing: payment failures, entitlements, model-call usage and token budgets
(dj-stripe registers its own models)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from apps.core.admin_base import ReadOnlyAdmin

from .budgets import llm_budget_of, llm_budget_override_set
from .metering import estimated_cost_usd
from .models import BillingAccount, LlmBudgetOverride, LlmBudgetPeriod, LlmUsageDaily, PaymentFailure
from .usage_report import llm_usage_report, llm_usage_rows, period_parse


class WebhookRowAdmin(ReadOnlyAdmin):
    """Rows written by webhooks only; staff change plans in Stripe, never here."""

    allow_delete = True


@admin.register(PaymentFailure)
class PaymentFailureAdmin(WebhookRowAdmin):
    list_display = ["invoice_id", "user", "amount_due", "currency", "attempt_count", "created_at", "resolved_at"]
    list_filter = [("resolved_at", admin.EmptyFieldListFilter), "currency"]
    search_fields = ["user__email", "invoice_id", "subscription_id"]
    list_select_related = ["user"]


@admin.register(BillingAccount)
class BillingAccountAdmin(WebhookRowAdmin):
    list_display = ["user", "user_tier", "seats", "subscription_id", "subscription_status", "synced_at"]
    list_filter = ["user__tier", "subscription_status"]
    search_fields = ["user__email", "subscription_id"]
    list_select_related = ["user"]

    @admin.display(description="tier", ordering="user__tier")
    def user_tier(self, obj: BillingAccount) -> str:
        return obj.user.tier


@admin.register(LlmUsageDaily)
class LlmUsageDailyAdmin(ReadOnlyAdmin):
    """Model-call usage per user, day, model and purpose (rolled up nightly), with its estimated cost."""

    list_display = ["day", "user", "purpose", "model", "calls", "prompt_tokens", "completion_tokens", "cached_tokens"]
    list_display += ["estimated_cost"]
    list_filter = ["purpose", "model", ("day", admin.DateFieldListFilter)]
    search_fields = ["user__email"]
    list_select_related = ["user"]
    date_hierarchy = "day"

    @admin.display(description="estimated cost (USD)")
    def estimated_cost(self, obj: LlmUsageDaily) -> str:
        cost = estimated_cost_usd(
            model=obj.model, prompt=obj.prompt_tokens, completion=obj.completion_tokens, cached=obj.cached_tokens
        )
        return f"{cost:.4f}"


class _TeamFilter(admin.SimpleListFilter):
    """The months of one team's members."""

    title = "team"
    parameter_name = "team"

    def lookups(self, request: Any, model_admin: Any) -> list[tuple[str, str]]:
        from apps.teams.models import Team

        return [(str(team.pk), team.name) for team in Team.objects.order_by("name")]

    def queryset(self, request: Any, queryset: Any) -> Any:
        return queryset.filter(user__team_membership__team_id=self.value()) if self.value() else queryset


@admin.register(LlmBudgetPeriod)
class LlmBudgetPeriodAdmin(ReadOnlyAdmin):
    """Tokens used per user and month: sorted by use, the top users of a period."""

    list_display = [
        "period",
        "user",
        "team",
        "used_tokens",
        "budget",
        "share",
        "estimated_cost",
        "month",
        "notified_at",
    ]
    # A team's usage for a period: filter by the team (its members' months, each on their own budget).
    list_filter = ["period", "user__tier", _TeamFilter]
    search_fields = ["user__email", "user__team_membership__team__name"]
    list_select_related = ["user", "user__team_membership__team"]

    @admin.display(description="team", ordering="user__team_membership__team__name")
    def team(self, obj: LlmBudgetPeriod) -> str:
        membership = getattr(obj.user, "team_membership", None)
        return membership.team.name if membership is not None else "—"

    ordering = ["-period", "-used_tokens"]

    @admin.display(description="budget")
    def budget(self, obj: LlmBudgetPeriod) -> str:
        budget = llm_budget_of(obj.user)
        return "unlimited" if budget is None else str(budget)

    @admin.display(description="used")
    def share(self, obj: LlmBudgetPeriod) -> str:
        budget = llm_budget_of(obj.user)
        return "—" if not budget else f"{100 * obj.used_tokens / budget:.0f} %"

    @admin.display(description="estimated cost (USD)")
    def estimated_cost(self, obj: LlmBudgetPeriod) -> str:
        rows = llm_usage_rows(user_id=obj.user_id, period=obj.period)
        cost = sum(estimated_cost_usd(model=m, prompt=p, completion=c, cached=k) for _d, m, _u, p, c, k in rows)
        return f"{cost:.4f}"

    @admin.display(description="month")
    def month(self, obj: LlmBudgetPeriod) -> str:
        url = reverse("admin:billing_llmbudgetperiod_user_month", args=[obj.user_id])
        return format_html('<a href="{}?period={}">by purpose and day</a>', url, f"{obj.period:%Y-%m}")

    def get_urls(self) -> list:
        return [
            path(
                "month/<uuid:user_id>/",
                self.admin_site.admin_view(self.user_month_view),
                name="billing_llmbudgetperiod_user_month",
            ),
            *super().get_urls(),
        ]

    def user_month_view(self, request: HttpRequest, user_id: Any) -> HttpResponse:
        """One user's month (``?period=YYYY-MM``): totals by purpose and by day, against the budget."""
        user = get_object_or_404(get_user_model(), pk=user_id)
        report = llm_usage_report(user=user, period=period_parse(request.GET.get("period")))
        context = {**self.admin_site.each_context(request), "title": f"Model usage of {user}", "report": report}
        context["subject"] = user
        return TemplateResponse(request, "admin/billing/llm_user_month.html", context)


class LlmBudgetOverrideForm(forms.ModelForm):
    class Meta:
        model = LlmBudgetOverride
        fields = ["user", "monthly_tokens"]


@admin.register(LlmBudgetOverride)
class LlmBudgetOverrideAdmin(admin.ModelAdmin):
    """Staff's per-user monthly token budgets; every change goes through the audited service."""

    form = LlmBudgetOverrideForm
    list_display = ["user", "monthly_tokens", "updated_at", "month_link"]
    search_fields = ["user__email"]
    list_select_related = ["user"]
    autocomplete_fields = ["user"]

    @admin.display(description="this month")
    def month_link(self, obj: LlmBudgetOverride) -> str:
        url = reverse("admin:billing_llmbudgetperiod_user_month", args=[obj.user_id])
        return format_html('<a href="{}">usage</a>', url)

    def save_model(self, request: HttpRequest, obj: LlmBudgetOverride, form: Any, change: bool) -> None:
        llm_budget_override_set(user=obj.user, monthly_tokens=obj.monthly_tokens, actor=request.user)
        # The admin's log entry and redirect name the row the service wrote.
        obj.pk = LlmBudgetOverride.objects.values_list("pk", flat=True).get(user_id=obj.user_id)
        obj._state.adding = False

    def delete_model(self, request: HttpRequest, obj: LlmBudgetOverride) -> None:
        llm_budget_override_set(user=obj.user, monthly_tokens=None, actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for obj in queryset.select_related("user"):
            self.delete_model(request, obj)
