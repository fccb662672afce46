"""allauth adapters: users signing up through allauth's pages or a social login (SSO) get their
key like any other; a password signed in through allauth's page or the admin's obeys the same
login rules as the API's (a team that enforces SSO refuses its members' passwords); a social
login's requests reach only public hosts unless its provider is one the operator configured."""

from typing import Any

import requests
from allauth.account.adapter import DefaultAccountAdapter
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.helpers import render_authentication_error
from django import forms
from django.conf import settings

from apps.core.errors import ApplicationError
from apps.core.guarded_http import HostRefused, session_guard

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

    def get_requests_session(self) -> requests.Session:
        """The session of every request allauth sends to a provider (discovery, token, userinfo, keys).
        A provider the operator configured (settings or allauth's table) is trusted with internal
        hosts; any other (a team's own provider, or none named) reaches only public ones, bar
        ``TEAM_IDP_ALLOWED_PRIVATE_HOSTS``, and a refused host ends the sign-in on allauth's error page."""
        session = super().get_requests_session()
        provider_id = self._provider_id_of_request()
        if provider_id and super().list_apps(self.request, provider=provider_id):
            return session
        session_guard(session, allowed_hosts=settings.TEAM_IDP_ALLOWED_PRIVATE_HOSTS)
        send = session.request

        def request_or_refusal_page(*args: Any, **kwargs: Any) -> requests.Response:
            try:
                return send(*args, **kwargs)
            except HostRefused as exc:
                if self.request is None:
                    raise
                provider = self.get_provider(self.request, provider_id) if provider_id else None
                raise ImmediateHttpResponse(render_authentication_error(self.request, provider, exception=exc)) from exc

        session.request = request_or_refusal_page
        return session

    def _provider_id_of_request(self) -> str | None:
        match = getattr(self.request, "resolver_match", None)
        return match.kwargs.get("provider_id") if match is not None else None
