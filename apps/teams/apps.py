"""Teams: members with roles, seats and invitations (the team tier sold per seat)."""

from django.apps import AppConfig


class TeamsConfig(AppConfig):
    name = "apps.teams"
    label = "teams"
    verbose_name = "Teams"
