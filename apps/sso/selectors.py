"""Single sign-on reads: the identity providers configured for this server."""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import urlencode

from allauth.socialaccount.adapter import get_adapter
from django.http import HttpRequest
from django.urls import reverse

from apps.teams.identity_provider import team_provider_for_email


class SsoProvider(NamedTuple):
    id: str
    name: str
    login_url: str


def sso_providers_list(*, request: HttpRequest, state: str = "", email: str = "") -> list[SsoProvider]:
    """Each configured provider with the browser URL that starts its login and ends at the
    code-issuing page (carrying the desktop app's ``state``); given a work ``email`` whose domain a
    team proved and signs in through its own provider, that provider comes first."""
    complete = reverse("sso-complete") + (f"?{urlencode({'state': state})}" if state else "")
    adapter = get_adapter()
    providers = adapter.list_providers(request)
    team_provider_id = team_provider_for_email(email=email) if "@" in email else None
    if team_provider_id is not None:
        providers.insert(0, adapter.get_provider(request, team_provider_id))
    return [
        SsoProvider(
            id=provider.sub_id,
            name=provider.name,
            login_url=request.build_absolute_uri(provider.get_login_url(request, process="login", next=complete)),
        )
        for provider in providers
    ]
