"""Teams fixtures: signed-in clients for any user, a team with granted seats."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from rest_framework.test import APIClient

from apps.accounts.models import User
from apps.accounts.tokens import tokens_issue
from apps.teams.models import Team
from apps.teams.seats import team_seats_grant
from apps.teams.services import team_create

ClientFor = Callable[[User], APIClient]


@pytest.fixture
def client_for() -> ClientFor:
    def make(user: User) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens_issue(user=user).access_token}")
        return client

    return make


@pytest.fixture
def owner(make_user) -> User:
    return make_user("owner@agency.example", email_verified=True)


@pytest.fixture
def make_team(owner) -> Callable[..., Team]:
    def make(*, seats: int = 5, user: User | None = None, name: str = "Agency") -> Team:
        team = team_create(user=user or owner, name=name)
        if seats:
            team = team_seats_grant(team=team, seats=seats, until=None, actor=None)
        return team

    return make


@pytest.fixture
def team(make_team) -> Team:
    return make_team(seats=5)
