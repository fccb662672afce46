"""Staff views of teams: members and pending invitations inline, seat usage, the paid quantity or
the grant. Staff grant seats (the change form's grant fields) and hand ownership over (an action on
members) through the audited services; everything else is read-only."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.accounts.models import User
from apps.core.admin_base import ReadOnlyAdmin
from apps.core.errors import ApplicationError

from .domains import domain_verify_by_staff
from .models import Invitation, Membership, Team, TeamDomain, TeamIdentityProvider
from .seats import team_seats_grant
from .selectors import seat_usage
from .services import team_lock, team_ownership_transfer


class MembershipInline(admin.TabularInline):
    model = Membership
    fields = ("user", "role", "created_at")
    readonly_fields = ("user", "role", "created_at")
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class PendingInvitationInline(admin.TabularInline):
    model = Invitation
    verbose_name_plural = "pending invitations"
    fields = ("email", "role", "invited_by", "expires_at")
    readonly_fields = ("email", "role", "invited_by", "expires_at")
    extra = 0
    can_delete = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Invitation]:
        return Invitation.objects.pending().select_related("invited_by")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class DomainInline(admin.TabularInline):
    model = TeamDomain
    fields = ("domain", "verified_at", "verified_by", "txt_record")
    readonly_fields = ("domain", "verified_at", "verified_by", "txt_record")
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class IdentityProviderInline(admin.StackedInline):
    """The team's own OpenID Connect provider: the secret is shown only as present or not."""

    model = TeamIdentityProvider
    fields = ("issuer", "client_id", "has_secret", "updated_at")
    readonly_fields = ("issuer", "client_id", "has_secret", "updated_at")
    extra = 0
    can_delete = False

    @admin.display(boolean=True, description="secret stored")
    def has_secret(self, obj: TeamIdentityProvider) -> bool:
        return bool(obj.secret_encrypted)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class TeamGrantForm(forms.ModelForm):
    class Meta:
        model = Team
        fields = ["granted_seats", "granted_until"]
        help_texts = {
            "granted_seats": "Seats without Stripe (invoiced customers, trials); 0 withdraws the grant. Audited.",
            "granted_until": "Last day of the grant; empty for open-ended.",
        }


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    form = TeamGrantForm
    list_display = ["name", "seats_in_force", "seat_usage_display", "subscribed_seats", "grant", "created_at"]
    search_fields = ["name", "memberships__user__email"]
    readonly_fields = [
        "id",
        "name",
        "seat_usage_display",
        "subscribed_seats",
        "enforce_sso",
        "dissolving_at",
        "created_at",
        "updated_at",
    ]
    fieldsets = [
        (None, {"fields": ["id", "name", "seat_usage_display", "enforce_sso", "dissolving_at"]}),
        ("Seats", {"fields": ["subscribed_seats", "granted_seats", "granted_until"]}),
        ("Dates", {"fields": ["created_at", "updated_at"]}),
    ]
    inlines = [MembershipInline, PendingInvitationInline, DomainInline, IdentityProviderInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # teams are made by their owners (or a team checkout)

    @admin.display(description="seats")
    def seats_in_force(self, obj: Team) -> int:
        return obj.seats

    @admin.display(description="seat usage")
    def seat_usage_display(self, obj: Team) -> str:
        usage = seat_usage(team=obj)
        over = " — over its seats" if usage.over_seats else ""
        return f"{usage.members} members + {usage.pending_invitations} pending of {usage.seats}{over}"

    @admin.display(description="grant")
    def grant(self, obj: Team) -> str:
        if not obj.granted_seats:
            return "—"
        until = obj.granted_until.isoformat() if obj.granted_until else "open-ended"
        return f"{obj.granted_seats} until {until}" + ("" if obj.grant_in_force() else " (ended)")

    def save_model(self, request: HttpRequest, obj: Team, form: forms.ModelForm, change: bool) -> None:
        # The grant goes through the audited service, never a bare save.
        if {"granted_seats", "granted_until"} & set(form.changed_data):
            team_seats_grant(
                team=obj,
                seats=form.cleaned_data["granted_seats"],
                until=form.cleaned_data["granted_until"],
                actor=cast(User, request.user),
                via="admin",
            )


@admin.register(Membership)
class MembershipAdmin(ReadOnlyAdmin):
    list_display = ["user", "team", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__email", "team__name"]
    list_select_related = ["user", "team"]
    actions = ["make_owner"]

    @admin.action(description="Make the selected member the owner of their team")
    def make_owner(self, request: HttpRequest, queryset: QuerySet[Membership]) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one member.", messages.ERROR)
            return
        chosen = queryset.get()
        try:
            with transaction.atomic():
                team = team_lock(team_id=chosen.team_id)
                membership = Membership.objects.select_for_update().select_related("user").get(pk=chosen.pk)
                team_ownership_transfer(team=team, new_owner=membership, actor=cast(User, request.user))
        except ApplicationError as exc:  # e.g. Stripe refused to move the paying customer: all rolled back
            self.message_user(request, f"{exc.message} ({exc.code})", messages.ERROR)
            return
        self.message_user(request, f"{membership.user} now owns {team}.", messages.SUCCESS)


@admin.register(TeamDomain)
class TeamDomainAdmin(ReadOnlyAdmin):
    list_display = ["domain", "team", "verified_at", "verified_by", "created_at"]
    list_filter = ["verified_by"]
    search_fields = ["domain", "team__name"]
    list_select_related = ["team"]
    actions = ["verify"]

    @admin.action(description="Verify the selected domains (staff proof instead of DNS)")
    def verify(self, request: HttpRequest, queryset: QuerySet[TeamDomain]) -> None:
        count = 0
        for domain in queryset.filter(verified_at__isnull=True):
            domain_verify_by_staff(domain=domain, staff=cast(User, request.user))
            count += 1
        self.message_user(request, f"Verified {count} domain(s).", messages.SUCCESS)
