"""Staff views of users and their sessions; the tier is read-only (billing owns it)."""

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import BaseUserCreationForm, UserChangeForm
from django.db.models import QuerySet
from django.http import HttpRequest

from .admin_login import ThrottledAdminAuthenticationForm
from .keys import user_key_create
from .models import TokenFamily, User
from .requests import AuthenticatedHttpRequest
from .tokens import sessions_revoke_by_staff

# Failed admin logins count against the same per-address and per-account limits as allauth's page.
admin.site.login_form = ThrottledAdminAuthenticationForm


class UserCreationForm(BaseUserCreationForm):
    class Meta:
        model = User
        fields = ("email",)

    def save(self, commit: bool = True) -> User:
        user = super().save(commit=commit)
        if commit:
            user_key_create(user=user)
        return user


class UserEditForm(UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    add_form = UserCreationForm
    form = UserEditForm
    ordering = ["-created_at"]
    list_display = ["email", "tier", "is_active", "is_staff", "created_at"]
    list_filter = ["tier", "is_active", "is_staff"]
    search_fields = ["email"]
    readonly_fields = ["id", "tier", "created_at", "updated_at", "last_login"]
    fieldsets = [
        (None, {"fields": ["id", "email", "password", "tier"]}),
        ("Permissions", {"fields": ["is_active", "is_staff", "is_superuser", "groups", "user_permissions"]}),
        ("Dates", {"fields": ["last_login", "created_at", "updated_at"]}),
    ]
    add_fieldsets = [(None, {"classes": ["wide"], "fields": ["email", "password1", "password2"]})]


@admin.register(TokenFamily)
class TokenFamilyAdmin(admin.ModelAdmin):
    list_display = ["id", "user", "created_at", "revoked_at", "revoked_reason"]
    list_filter = ["revoked_reason"]
    search_fields = ["user__email"]
    readonly_fields = ["id", "user", "created_at", "updated_at", "revoked_at", "revoked_reason"]
    actions = ["revoke"]

    @admin.action(description="Revoke selected sessions")
    def revoke(self, request: AuthenticatedHttpRequest, queryset: QuerySet[TokenFamily]) -> None:
        count = sessions_revoke_by_staff(families=queryset, staff=request.user)
        self.message_user(request, f"Revoked {count} session(s).", messages.SUCCESS)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
