"""Teams over REST: create, the caller's team, rename, members and roles, cross-team ids, leaving."""

from __future__ import annotations

import uuid

import pytest

from apps.accounts.models import TokenFamily
from apps.accounts.tokens import tokens_issue
from apps.core.audit import AuditAction
from apps.core.models import AuditEvent
from apps.teams.models import Membership, Team, TeamRole
from conftest import DEFAULT_PASSWORD

pytestmark = pytest.mark.django_db


def _join(team: Team, user, role: str = TeamRole.MEMBER) -> Membership:
    return Membership.objects.create(team=team, user=user, role=role)


def test_creating_a_team_makes_the_caller_its_owner(owner, client_for):
    # when
    response = client_for(owner).post("/api/v1/teams", {"name": "Agency"}, format="json")

    # then
    assert response.status_code == 201
    body = response.json()
    assert {key: body[key] for key in ("name", "seats", "seats_used", "role")} == {
        "name": "Agency",
        "seats": 0,
        "seats_used": 1,
        "role": "owner",
    }
    assert Membership.objects.get(user=owner).role == TeamRole.OWNER
    assert client_for(owner).get("/api/v1/teams/current").json()["id"] == body["id"]


def test_a_user_belongs_to_at_most_one_team(owner, team, client_for):
    response = client_for(owner).post("/api/v1/teams", {"name": "Second"}, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "already_in_team"
    assert Team.objects.count() == 1


def test_current_team_is_404_team_not_found_outside_a_team(make_user, client_for):
    response = client_for(make_user()).get("/api/v1/teams/current")

    assert response.status_code == 404
    assert response.json()["code"] == "team_not_found"


def test_the_current_team_shows_seats_and_the_callers_role(team, make_user, client_for):
    member = make_user()
    _join(team, member)

    body = client_for(member).get("/api/v1/teams/current").json()

    assert (body["seats"], body["seats_used"], body["role"], body["over_seats"]) == (5, 2, "member", False)


def test_an_admin_renames_the_team_a_member_gets_team_role_required(team, make_user, client_for):
    admin, member = make_user(), make_user()
    _join(team, admin, TeamRole.ADMIN)
    _join(team, member)

    renamed = client_for(admin).patch(f"/api/v1/teams/{team.pk}", {"name": "New name"}, format="json")
    refused = client_for(member).patch(f"/api/v1/teams/{team.pk}", {"name": "Mine"}, format="json")

    assert renamed.status_code == 200
    assert renamed.json()["name"] == "New name"
    assert refused.status_code == 403
    assert refused.json()["code"] == "team_role_required"
    assert Team.objects.get(pk=team.pk).name == "New name"


def test_another_teams_ids_answer_404(team, make_team, make_user, client_for):
    # given an owner of another team
    other_owner = make_user(email_verified=True)
    other = make_team(user=other_owner, name="Other")
    member = make_user()
    _join(other, member)
    client = client_for(other_owner)

    # when they address the first team's ids
    paths = [
        ("patch", f"/api/v1/teams/{team.pk}"),
        ("delete", f"/api/v1/teams/{team.pk}"),
        ("get", f"/api/v1/teams/{team.pk}/members"),
        ("get", f"/api/v1/teams/{team.pk}/invitations"),
        ("post", f"/api/v1/teams/{team.pk}/invitations"),
        ("delete", f"/api/v1/teams/{team.pk}/members/{member.pk}"),
        ("patch", f"/api/v1/teams/{other.pk}/members/{uuid.uuid4()}"),
    ]
    answers = [
        getattr(client, method)(path, {"name": "x", "email": "x@example.com", "role": "member"}, format="json")
        for method, path in paths
    ]

    # then every one is a 404 and nothing changed
    assert [answer.status_code for answer in answers] == [404] * len(paths)
    assert Team.objects.get(pk=team.pk).name == "Agency"
    assert Membership.objects.filter(user=member, team=other).exists()


def test_members_are_listed_as_an_array_with_the_records_pagination_headers(team, owner, make_user, client_for):
    for _ in range(3):
        _join(team, make_user())

    response = client_for(owner).get(f"/api/v1/teams/{team.pk}/members?limit=2")

    assert response.status_code == 200
    body = response.json()
    assert isinstance(body, list)
    assert len(body) == 2
    assert set(body[0]) >= {"user_id", "email", "role", "joined_at"}
    assert body[0]["email"] == owner.email
    assert body[0]["role"] == "owner"
    assert response["X-Total-Count"] == "4"
    assert response["X-Page"] == "1"
    assert response["X-Per-Page"] == "2"
    assert 'rel="next"' in response["Link"]


def test_an_admin_changes_a_role_a_member_cannot(team, make_user, client_for):
    admin, member = make_user(), make_user()
    _join(team, admin, TeamRole.ADMIN)
    _join(team, member)

    refused = client_for(member).patch(f"/api/v1/teams/{team.pk}/members/{admin.pk}", {"role": "member"})
    promoted = client_for(admin).patch(f"/api/v1/teams/{team.pk}/members/{member.pk}", {"role": "admin"})

    assert refused.status_code == 403
    assert refused.json()["code"] == "team_role_required"
    assert promoted.status_code == 200
    assert promoted.json()["role"] == "admin"


def test_the_owner_must_transfer_before_leaving_or_being_demoted(team, owner, make_user, client_for):
    admin = make_user()
    _join(team, admin, TeamRole.ADMIN)

    leaving = client_for(owner).delete(f"/api/v1/teams/{team.pk}/members/{owner.pk}")
    demoted = client_for(admin).patch(f"/api/v1/teams/{team.pk}/members/{owner.pk}", {"role": "member"})
    removed = client_for(admin).delete(f"/api/v1/teams/{team.pk}/members/{owner.pk}")

    assert [r.status_code for r in (leaving, demoted, removed)] == [409, 409, 409]
    assert {r.json()["code"] for r in (leaving, demoted, removed)} == {"owner_must_transfer"}
    assert Membership.objects.get(user=owner).role == TeamRole.OWNER


def test_handing_ownership_over_makes_the_old_owner_an_admin_and_is_audited(team, owner, make_user, client_for):
    # given
    admin = make_user()
    _join(team, admin, TeamRole.ADMIN)

    # when an admin tries, then the owner does it
    refused = client_for(admin).patch(f"/api/v1/teams/{team.pk}/members/{admin.pk}", {"role": "owner"})
    response = client_for(owner).patch(f"/api/v1/teams/{team.pk}/members/{admin.pk}", {"role": "owner"})

    # then
    assert refused.status_code == 403
    assert response.status_code == 200
    assert Membership.objects.get(user=admin).role == TeamRole.OWNER
    assert Membership.objects.get(user=owner).role == TeamRole.ADMIN
    event = AuditEvent.objects.get(action=AuditAction.TEAM_OWNERSHIP_TRANSFERRED)
    assert event.actor_id == owner.pk
    assert event.subject_user_id == admin.pk
    # and the old owner can now leave
    assert client_for(owner).delete(f"/api/v1/teams/{team.pk}/members/{owner.pk}").status_code == 204


def test_a_member_leaves_with_their_own_id_but_cannot_remove_others(team, make_user, client_for):
    member, other = make_user(), make_user()
    _join(team, member)
    _join(team, other)

    refused = client_for(member).delete(f"/api/v1/teams/{team.pk}/members/{other.pk}")
    left = client_for(member).delete(f"/api/v1/teams/{team.pk}/members/{member.pk}")

    assert refused.status_code == 403
    assert refused.json()["code"] == "team_role_required"
    assert left.status_code == 204
    assert not Membership.objects.filter(user=member).exists()
    assert Membership.objects.filter(user=other).exists()


def test_an_admin_removes_a_member(team, make_user, client_for):
    admin, member = make_user(), make_user()
    _join(team, admin, TeamRole.ADMIN)
    _join(team, member)

    response = client_for(admin).delete(f"/api/v1/teams/{team.pk}/members/{member.pk}")

    assert response.status_code == 204
    assert not Membership.objects.filter(user=member).exists()


def test_only_the_owner_deletes_a_team_without_seats_it_goes_at_once(make_team, owner, make_user, client_for):
    # given a team without paid seats or a grant
    team = make_team(seats=0)
    admin = make_user()
    _join(team, admin, TeamRole.ADMIN)

    # when
    refused = client_for(admin).delete(f"/api/v1/teams/{team.pk}")
    deleted = client_for(owner).delete(f"/api/v1/teams/{team.pk}")

    # then
    assert refused.status_code == 403
    assert refused.json()["code"] == "team_role_required"
    assert deleted.status_code == 204
    assert not Team.objects.filter(pk=team.pk).exists()
    assert not Membership.objects.filter(user__in=[owner, admin]).exists()


def test_a_deleted_team_with_granted_seats_stays_until_they_end_and_takes_no_invitations(team, owner, client_for):
    client = client_for(owner)

    assert client.delete(f"/api/v1/teams/{team.pk}").status_code == 204
    invite = client.post(f"/api/v1/teams/{team.pk}/invitations", {"email": "new@agency.example"}, format="json")

    assert Team.objects.get(pk=team.pk).dissolving_at is not None
    assert client.get("/api/v1/teams/current").json()["dissolving"] is True
    assert invite.status_code == 409
    assert invite.json()["code"] == "team_dissolving"


def test_bad_input_is_a_400_not_a_500(team, owner, client_for):
    client = client_for(owner)

    answers = [
        client.post("/api/v1/teams", {"name": ""}, format="json"),
        client.patch(f"/api/v1/teams/{team.pk}", {"seats": 0}, format="json"),
        client.patch(f"/api/v1/teams/{team.pk}/members/{owner.pk}", {"role": "king"}, format="json"),
        client.post(f"/api/v1/teams/{team.pk}/invitations", {"email": "nope", "role": "member"}, format="json"),
        client.post(f"/api/v1/teams/{team.pk}/invitations", {"email": "a@b.example", "role": "owner"}, format="json"),
    ]

    assert [answer.status_code for answer in answers] == [400] * len(answers)
    assert {answer.json()["code"] for answer in answers} == {"validation_error"}


def test_enforcing_sso_refuses_password_login_and_revokes_sessions(team, owner, make_user, client_for, api_client):
    # given a member with an open session
    member = make_user("m@agency.example")
    _join(team, member)
    session = tokens_issue(user=member)
    outsider = make_user("o@elsewhere.example")

    # when an admin switches SSO enforcement on
    response = client_for(owner).patch(f"/api/v1/teams/{team.pk}", {"enforce_sso": True}, format="json")

    # then
    assert response.status_code == 200
    assert response.json()["enforce_sso"] is True
    refused = api_client.post("/api/v1/auth/login", {"email": member.email, "password": DEFAULT_PASSWORD})
    assert refused.status_code == 403
    assert refused.json()["code"] == "sso_required"
    assert refused.json()["sso_url"] == "/api/v1/auth/sso/providers"
    refresh = api_client.post("/api/v1/auth/refresh", {"refresh_token": session.refresh_token})
    assert refresh.status_code == 401
    assert not TokenFamily.objects.filter(user=member, revoked_at__isnull=True).exists()
    assert TokenFamily.objects.filter(user=member, revoked_reason="sso_enforced").exists()
    assert AuditEvent.objects.filter(action=AuditAction.TEAM_SSO_ENFORCED).exists()
    # and someone outside the team still signs in with a password
    ok = api_client.post("/api/v1/auth/login", {"email": outsider.email, "password": DEFAULT_PASSWORD})
    assert ok.status_code == 200


def test_a_member_cannot_switch_sso_enforcement(team, make_user, client_for):
    member = make_user()
    _join(team, member)

    response = client_for(member).patch(f"/api/v1/teams/{team.pk}", {"enforce_sso": True}, format="json")

    assert response.status_code == 403
    assert not Team.objects.get(pk=team.pk).enforce_sso


def test_a_team_owner_cannot_delete_their_account_before_handing_the_team_over(team, owner, make_user, client_for):
    # given the owner of a team with another member
    _join(team, make_user("member@agency.example"))

    # when the owner asks to delete their account
    response = client_for(owner).delete("/api/v1/auth/me", {"password": DEFAULT_PASSWORD}, format="json")

    # then nothing is closed: the team must be handed over first
    assert response.status_code == 409
    assert response.json()["code"] == "account_deletion_blocked"
    assert team.name in response.json()["reasons"][0]
    owner.refresh_from_db()
    assert owner.is_active


def test_a_team_member_can_delete_their_account(team, make_user, client_for):
    member = make_user("member@agency.example")
    _join(team, member)

    response = client_for(member).delete("/api/v1/auth/me", {"password": DEFAULT_PASSWORD}, format="json")

    assert response.status_code == 204


@pytest.mark.parametrize("door", ["allauth login page", "admin login"])
def test_enforcing_sso_refuses_the_browser_password_doors_too(team, make_user, door):
    # given a member (staff, so the admin door would otherwise let them in) of a team that enforces SSO
    from django.test import Client

    member = make_user("m@agency.example", email_verified=True, is_staff=True)
    _join(team, member)
    team.enforce_sso = True
    team.save(update_fields=["enforce_sso"])
    browser = Client()

    # when they sign in with their password in the browser
    if door == "admin login":
        page = browser.post("/admin/login/", {"username": member.email, "password": DEFAULT_PASSWORD})
    else:
        page = browser.post("/accounts/login/", {"login": member.email, "password": DEFAULT_PASSWORD})

    # then the page refuses it and points to SSO; no session is opened
    assert page.status_code == 200
    assert "single sign-on" in page.content.decode()
    assert "_auth_user_id" not in browser.session
