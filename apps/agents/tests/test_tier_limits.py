"""A downgrade pauses the agents over the new ``batch_active`` (most recently enabled first) with
``paused_reason: tier_limit``, visible in the API; they resume when the plan comes back; audited."""

from __future__ import annotations

import pytest

from apps.accounts.models import User
from apps.core.audit import AuditAction
from apps.core.models import AuditEvent
from apps.teams.seats import team_seats_grant
from apps.teams.services import team_create

from .conftest import client_for, local_body

pytestmark = pytest.mark.django_db

LOCAL = "/api/v1/agents/local"


@pytest.fixture
def granted_owner(make_user, django_capture_on_commit_callbacks):
    """An owner whose team plan comes from a staff grant (so tests can take it away)."""
    owner = make_user(email_verified=True)
    team = team_create(user=owner, name="Agency")
    with django_capture_on_commit_callbacks(execute=True):
        team_seats_grant(team=team, seats=2, until=None, actor=None)
    owner.refresh_from_db()
    assert owner.tier == "team"
    return owner, team


def _agents(client) -> dict[str, dict]:
    return {row["name"]: row for row in client.get(LOCAL).json()}


def test_a_downgrade_pauses_the_most_recently_enabled_and_the_plan_coming_back_resumes_them(
    granted_owner, django_capture_on_commit_callbacks
):
    # given four enabled agents on the team plan (unlimited batch_active)
    owner, team = granted_owner
    client = client_for(owner)
    for n in range(4):
        assert client.post(LOCAL, local_body(name=f"a{n}"), format="json").status_code == 201

    # when the grant is withdrawn: free allows 2 enabled agents
    with django_capture_on_commit_callbacks(execute=True):
        team_seats_grant(team=team, seats=0, until=None, actor=None)

    # then the two most recently enabled are paused, visibly, and audited
    agents = _agents(client)
    assert User.objects.get(pk=owner.pk).tier == "free"
    assert {name: (row["enabled"], row["paused_reason"]) for name, row in agents.items()} == {
        "a0": (True, None),
        "a1": (True, None),
        "a2": (False, "tier_limit"),
        "a3": (False, "tier_limit"),
    }
    assert agents["a3"]["next_run_at"] is None
    assert AuditEvent.objects.filter(action=AuditAction.AGENT_PAUSED).count() == 2

    # when the plan comes back
    with django_capture_on_commit_callbacks(execute=True):
        team_seats_grant(team=team, seats=2, until=None, actor=None)

    # then they resume by themselves
    agents = _agents(client)
    assert {name: (row["enabled"], row["paused_reason"]) for name, row in agents.items()} == {
        f"a{n}": (True, None) for n in range(4)
    }
    assert agents["a3"]["next_run_at"] is not None
    assert AuditEvent.objects.filter(action=AuditAction.AGENT_RESUMED).count() == 2


def test_an_agent_the_user_switched_off_is_not_resumed(granted_owner, django_capture_on_commit_callbacks):
    # given three agents, one paused by a downgrade and then switched off by the user
    owner, team = granted_owner
    client = client_for(owner)
    ids = [client.post(LOCAL, local_body(name=f"a{n}"), format="json").json()["id"] for n in range(3)]
    with django_capture_on_commit_callbacks(execute=True):
        team_seats_grant(team=team, seats=0, until=None, actor=None)
    client.put(f"{LOCAL}/{ids[2]}", local_body(name="a2", enabled=False), format="json")

    # when the plan comes back
    with django_capture_on_commit_callbacks(execute=True):
        team_seats_grant(team=team, seats=2, until=None, actor=None)

    # then the user's decision stands
    agents = _agents(client)
    assert (agents["a2"]["enabled"], agents["a2"]["paused_reason"]) == (False, None)
