"""allauth adapters: users signing up through allauth's pages or a social login (SSO) get their
key like any other; a password signed in through allauth's page or the admin's obeys the same
login rules as the API's (a team that enforces SSO refuses its members' passwords)."""

from allauth.account.adapter import DefaultAccountAdapter
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from django import forms
from django.conf import settings

from apps.core.errors import ApplicationError

from .keys import user_key_create
from .login_policy import password_login_rules_check
from .social_apps import social_apps_from_sources


class AccountAdapter(DefaultAccountAdapter):
    def authenticate(self, request, **credentials):
        """allauth's login page and the admin's (``admin_login``) check passwords here."""
        user = super().authenticate(request, **credentials)
        if user is not None:
            try:
                password_login_rules_check(user=user)
            except ApplicationError as exc:
                where = exc.extra.get("sso_url") if exc.extra else None
                raise forms.ValidationError(f"{exc.message} ({where})" if where else exc.message) from exc
        return user

    def is_open_for_signup(self, request):
        return getattr(settings, "ACCOUNT_ALLOW_REGISTRATION", True)

    def save_user(self, request, user, form, commit=True):
        user = super().save_user(request, user, form, commit=commit)
        if commit:
            user_key_create(user=user)
        return user


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def list_apps(self, request, provider=None, client_id=None):
        """Settings' and the database's apps, plus those registered sources build for one provider id
        (a team's own provider is looked up by its id only, so the public list never names teams)."""
        apps = super().list_apps(request, provider=provider, client_id=client_id)
        if provider:
            extra = social_apps_from_sources(provider=provider)
            apps.extend(app for app in extra if not client_id or app.client_id == client_id)
        return apps

    def save_user(self, request, sociallogin, form=None):
        user = super().save_user(request, sociallogin, form=form)
        user_key_create(user=user)
        return user
