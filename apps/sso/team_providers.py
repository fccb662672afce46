"""Each team's own OpenID Connect provider as an allauth ``SocialApp`` (provider ``openid_connect``,
provider id ``team-<team id>``), built from the team's registration when allauth looks it up; the
decrypted secret lives only in that in-memory app. A team provider's word on an address counts only
for the domains its team proved."""

from __future__ import annotations

from typing import Any

from allauth.socialaccount.models import SocialApp
from django.http import HttpRequest

from apps.teams.identity_provider import team_id_of_provider, team_provider_credentials, team_provider_vouches_for

# Where the provider of the browser's last SSO login is kept (the code step reads it).
SESSION_PROVIDER_KEY = "sso_provider_id"


def team_social_apps(provider: str) -> list[SocialApp]:
    credentials = team_provider_credentials(provider_id=provider)
    if credentials is None:
        return []
    return [
        SocialApp(
            provider="openid_connect",
            provider_id=credentials.provider_id,
            name=credentials.team.name,
            client_id=credentials.client_id,
            secret=credentials.secret,
            settings={"server_url": credentials.issuer},
        )
    ]


def distrust_addresses_outside_the_team(sociallogin: Any) -> None:
    """A team's admin controls its provider: what it says about addresses outside the team's proven
    domains is not taken as verified (else it could claim anyone's address and their invitations)."""
    provider_id = sociallogin.account.provider
    if team_id_of_provider(provider_id) is None:
        return
    for address in sociallogin.email_addresses:
        if address.verified and team_provider_vouches_for(provider_id=provider_id, email=address.email) is None:
            address.verified = False


def on_user_logged_in(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    """Remember which provider this browser session signed in through (none for a password)."""
    if not hasattr(request, "session"):
        return
    sociallogin = kwargs.get("sociallogin")
    if sociallogin is not None:
        request.session[SESSION_PROVIDER_KEY] = sociallogin.account.provider
    else:
        request.session.pop(SESSION_PROVIDER_KEY, None)
