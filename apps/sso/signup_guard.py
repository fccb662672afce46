"""Stops an SSO sign-up before allauth makes the account when the person signs in through a team's
own provider with an address of that team's proven domains and the team has no free seat: a clear
page (and the error for the desktop app) instead of a half-made account."""

from __future__ import annotations

from typing import Any

from allauth.core.exceptions import ImmediateHttpResponse
from django.http import HttpRequest

from apps.teams.invitations import no_free_seat
from apps.teams.selectors import seat_usage
from apps.teams.sso_join import team_refusing_email

from .team_providers import distrust_addresses_outside_the_team


def on_pre_social_login(sender: Any, request: HttpRequest, sociallogin: Any, **kwargs: Any) -> None:
    distrust_addresses_outside_the_team(sociallogin)
    if sociallogin.is_existing:
        return
    email = (getattr(sociallogin.user, "email", "") or "").lower()
    team = team_refusing_email(email=email, provider_id=sociallogin.account.provider) if email else None
    if team is None:
        return
    from .views import refusal_page  # views import allauth's URL machinery; keep it out of app loading

    usage = seat_usage(team=team)
    raise ImmediateHttpResponse(refusal_page(request, no_free_seat(seats=usage.seats, seats_used=usage.used)))
