"""Social-login apps kept outside settings and allauth's table (e.g. a team's own OpenID Connect
provider): higher apps register a source here in ``AppConfig.ready``; the social account adapter
asks every source when allauth looks an app up by its provider id."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from allauth.socialaccount.models import SocialApp

# Given a provider id (never None: sources answer only lookups of one provider), the apps it names.
SocialAppSource = Callable[[str], "list[SocialApp]"]

_sources: dict[str, SocialAppSource] = {}


def register_social_app_source(name: str, source: SocialAppSource) -> None:
    _sources[name] = source


def social_apps_from_sources(*, provider: str) -> list[SocialApp]:
    return [app for source in _sources.values() for app in source(provider)]
