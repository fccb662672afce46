"""Staff seat grants (command, admin, expiry), all audited; the team admin and ownership transfer."""

from __future__ import annotations

import datetime

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from apps.accounts.models import User
from apps.core.audit import AuditAction
from apps.core.models import AuditEvent
from apps.teams.models import Invitation, Membership, Team, TeamRole
from apps.teams.seats import team_grants_expire, team_seats_grant

pytestmark = pytest.mark.django_db


def _tier(user: User) -> str:
    return User.objects.get(pk=user.pk).tier


@pytest.fixture
def staff_client(make_user) -> Client:
    client = Client()
    client.force_login(make_user("staff@adiuva.example", is_staff=True, is_superuser=True))
    return client


def test_team_grant_command_grants_seats_until_a_day_and_is_audited(make_team, owner, make_user):
    # given a team without seats and a member
    team = make_team(seats=0)
    member = make_user()
    Membership.objects.create(team=team, user=member)

    # when
    call_command("team_grant", str(team.pk), "--seats", "4", "--until", "2099-01-31")

    # then
    team.refresh_from_db()
    assert (team.seats, team.granted_until) == (4, datetime.date(2099, 1, 31))
    assert (_tier(owner), _tier(member)) == ("team", "team")
    event = AuditEvent.objects.get(action=AuditAction.TEAM_SEATS_GRANTED)
    assert event.data["seats"] == 4
    assert event.data["until"] == "2099-01-31"
    assert event.data["via"] == "command"
    assert event.target_id == str(team.pk)


def test_team_grant_command_refuses_bad_input(make_team):
    team = make_team(seats=0)

    with pytest.raises(CommandError):
        call_command("team_grant", str(team.pk), "--seats", "2", "--until", "31.01.2099")
    with pytest.raises(CommandError):
        call_command("team_grant", "00000000-0000-0000-0000-000000000000", "--seats", "2")


def test_an_expired_grant_is_withdrawn_and_members_fall_back(make_team, owner):
    # given a grant whose last day was yesterday
    team = make_team(seats=3)
    yesterday = timezone.localdate() - datetime.timedelta(days=1)
    Team.objects.filter(pk=team.pk).update(granted_until=yesterday)
    assert _tier(owner) == "team"

    # when the hourly task runs
    expired = team_grants_expire()

    # then
    assert expired == 1
    assert Team.objects.get(pk=team.pk).seats == 0
    assert _tier(owner) == "free"
    assert AuditEvent.objects.filter(action=AuditAction.TEAM_SEATS_GRANTED, data__via="expiry").exists()


def test_the_admin_shows_members_usage_and_pending_invitations(staff_client, team, owner):
    Invitation.objects.create(
        team=team, email="p@agency.example", token_hash="x" * 64, expires_at=timezone.now() + datetime.timedelta(days=1)
    )

    page = staff_client.get(f"/admin/teams/team/{team.pk}/change/").content.decode()
    listing = staff_client.get("/admin/teams/team/").content.decode()

    assert owner.email in page
    assert "p@agency.example" in page
    assert "1 members + 1 pending of 5" in page
    assert "Agency" in listing


def test_staff_grant_seats_in_the_admin_through_the_audited_service(staff_client, make_team, owner):
    team = make_team(seats=0)

    response = staff_client.post(
        f"/admin/teams/team/{team.pk}/change/",
        {
            "granted_seats": "6",
            "granted_until": "",
            "memberships-TOTAL_FORMS": "1",
            "memberships-INITIAL_FORMS": "1",
            "invitations-TOTAL_FORMS": "0",
            "invitations-INITIAL_FORMS": "0",
            "domains-TOTAL_FORMS": "0",
            "domains-INITIAL_FORMS": "0",
            "identity_provider-TOTAL_FORMS": "0",
            "identity_provider-INITIAL_FORMS": "0",
            "memberships-0-id": str(Membership.objects.get(user=owner).pk),
            "memberships-0-team": str(team.pk),
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    assert Team.objects.get(pk=team.pk).seats == 6
    assert _tier(owner) == "team"
    event = AuditEvent.objects.get(action=AuditAction.TEAM_SEATS_GRANTED)
    assert event.actor is not None
    assert event.actor.email == "staff@adiuva.example"
    assert event.data["via"] == "admin"


def test_staff_hand_ownership_over_with_an_admin_action(staff_client, team, owner, make_user):
    member = make_user()
    chosen = Membership.objects.create(team=team, user=member)

    response = staff_client.post(
        "/admin/teams/membership/",
        {"action": "make_owner", ACTION_CHECKBOX_NAME: [str(chosen.pk)], "index": 0},
    )

    assert response.status_code == 302
    assert Membership.objects.get(user=member).role == TeamRole.OWNER
    assert Membership.objects.get(user=owner).role == TeamRole.ADMIN
    event = AuditEvent.objects.get(action=AuditAction.TEAM_OWNERSHIP_TRANSFERRED)
    assert event.actor is not None
    assert event.actor.email == "staff@adiuva.example"


def test_withdrawing_a_grant_with_seats_0(make_team, owner):
    team = make_team(seats=2)

    team_seats_grant(team=team, seats=0, until=None, actor=None)

    assert Team.objects.get(pk=team.pk).seats == 0
    assert _tier(owner) == "free"
