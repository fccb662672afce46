"""Single sign-on reads: the identity providers configured for this server."""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import urlencode

from allauth.socialaccount.adapter import get_adapter
from django.http import HttpRequest
from django.urls import reverse


class SsoProvider(NamedTuple):
    id: str
    name: str
    login_url: str


def sso_providers_list(*, request: HttpRequest, state: str = "") -> list[SsoProvider]:
    """Each configured provider with the browser URL that starts its login and ends at the
    code-issuing page (carrying the desktop app's ``state``)."""
    complete = reverse("sso-complete") + (f"?{urlencode({'state': state})}" if state else "")
    return [
        SsoProvider(
            id=provider.sub_id,
            name=provider.name,
            login_url=request.build_absolute_uri(provider.get_login_url(request, process="login", next=complete)),
        )
        for provider in get_adapter().list_providers(request)
    ]
