"""Invitations: the e-mail, seats held until accepted, revoked or expired, the verified-address rule,
acceptance by id and by the e-mailed token, and the race for the last seat."""

from __future__ import annotations

import re
import threading
from datetime import timedelta

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.db import connections
from django.utils import timezone

from apps.teams.models import Invitation, Membership, Team, TeamRole
from apps.teams.seats import team_seats_grant

pytestmark = pytest.mark.django_db


def _invite(client, team: Team, email: str, role: str = "member"):
    return client.post(f"/api/v1/teams/{team.pk}/invitations", {"email": email, "role": role}, format="json")


def _token_from_mail() -> str:
    match = re.search(r"token=([\w-]+)", str(mail.outbox[-1].body))
    assert match, mail.outbox[-1].body
    return match.group(1)


def test_an_invitation_is_created_and_mailed_with_desktop_and_browser_links(
    team, owner, client_for, django_capture_on_commit_callbacks
):
    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = _invite(client_for(owner), team, "New@Agency.example", "admin")

    # then
    assert response.status_code == 201
    body = response.json()
    assert (body["email"], body["role"]) == ("new@agency.example", "admin")
    assert set(body) >= {"id", "email", "role", "expires_at"}
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["new@agency.example"]
    assert "Agency" in message.subject
    assert "adiuva://teams/accept?token=" in message.body
    assert "http://127.0.0.1:8000/teams/accept?token=" in message.body
    invitation = Invitation.objects.get()
    assert abs(invitation.expires_at - invitation.created_at - timedelta(days=7)) < timedelta(minutes=1)
    assert _token_from_mail() not in invitation.token_hash  # only the hash is kept


def test_a_member_cannot_invite(team, make_user, client_for):
    member = make_user()
    Membership.objects.create(team=team, user=member, role=TeamRole.MEMBER)

    response = _invite(client_for(member), team, "x@agency.example")

    assert response.status_code == 403
    assert response.json()["code"] == "team_role_required"


def test_pending_invitations_hold_seats_until_none_is_free(make_team, owner, client_for):
    # given three seats: the owner takes one
    team = make_team(seats=3)
    client = client_for(owner)

    # when
    answers = [_invite(client, team, f"p{n}@agency.example") for n in range(3)]

    # then two invitations fit, the third finds no free seat
    assert [answer.status_code for answer in answers] == [201, 201, 409]
    assert answers[2].json()["code"] == "no_free_seat"
    assert answers[2].json()["seats"] == 3
    assert client.get("/api/v1/teams/current").json()["seats_used"] == 3


def test_revoking_or_expiry_frees_the_seat(make_team, owner, client_for):
    team = make_team(seats=2)
    client = client_for(owner)
    first = _invite(client, team, "a@agency.example").json()

    # revoked: the seat is free again
    assert client.delete(f"/api/v1/teams/{team.pk}/invitations/{first['id']}").status_code == 204
    assert client.delete(f"/api/v1/teams/{team.pk}/invitations/{first['id']}").status_code == 404
    second = _invite(client, team, "b@agency.example")
    assert second.status_code == 201

    # expired: the seat is free again and the invitation is gone from the list
    Invitation.objects.filter(pk=second.json()["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert client.get(f"/api/v1/teams/{team.pk}/invitations").json() == []
    assert _invite(client, team, "c@agency.example").status_code == 201


def test_inviting_the_same_address_again_replaces_the_pending_invitation(make_team, owner, client_for):
    team = make_team(seats=2)
    client = client_for(owner)

    first = _invite(client, team, "a@agency.example")
    again = _invite(client, team, "a@agency.example")

    assert (first.status_code, again.status_code) == (201, 201)
    assert [row["id"] for row in client.get(f"/api/v1/teams/{team.pk}/invitations").json()] == [again.json()["id"]]


def test_an_over_seats_team_refuses_invitations(make_team, owner, make_user, client_for):
    # given more members than seats (the grant was cut)
    team = make_team(seats=3)
    for _ in range(2):
        Membership.objects.create(team=team, user=make_user())
    team_seats_grant(team=team, seats=2, until=None, actor=None)

    # when
    response = _invite(client_for(owner), team, "x@agency.example")
    body = client_for(owner).get("/api/v1/teams/current").json()

    # then nobody was removed and the team says it is over its seats
    assert response.status_code == 409
    assert response.json()["code"] == "no_free_seat"
    assert body["over_seats"] is True
    assert body["members"] == 3


def test_invitations_addressed_to_me_need_a_verified_address(team, owner, make_user, client_for):
    verified = make_user("v@agency.example", email_verified=True)
    unverified = make_user("u@agency.example")
    _invite(client_for(owner), team, "v@agency.example")
    _invite(client_for(owner), team, "u@agency.example")

    mine = client_for(verified).get("/api/v1/teams/invitations").json()
    not_shown = client_for(unverified).get("/api/v1/teams/invitations").json()

    assert [(row["email"], row["team"]["name"]) for row in mine] == [("v@agency.example", "Agency")]
    assert not_shown == []


def test_accepting_by_id_joins_the_team_with_the_invited_role(team, owner, make_user, client_for):
    invitee = make_user("v@agency.example", email_verified=True)
    invitation = _invite(client_for(owner), team, "v@agency.example", "admin").json()

    response = client_for(invitee).post(f"/api/v1/teams/invitations/{invitation['id']}/accept")

    assert response.status_code == 200
    assert (response.json()["id"], response.json()["role"]) == (str(team.pk), "admin")
    assert Membership.objects.get(user=invitee).role == TeamRole.ADMIN
    assert client_for(owner).get(f"/api/v1/teams/{team.pk}/invitations").json() == []
    again = client_for(invitee).post(f"/api/v1/teams/invitations/{invitation['id']}/accept")
    assert again.status_code == 404


def test_accepting_needs_the_invited_address_verified(team, owner, make_user, client_for):
    invitee = make_user("u@agency.example")
    invitation = _invite(client_for(owner), team, "u@agency.example").json()

    response = client_for(invitee).post(f"/api/v1/teams/invitations/{invitation['id']}/accept")

    assert response.status_code == 403
    assert response.json()["code"] == "email_not_verified"
    assert not Membership.objects.filter(user=invitee).exists()
    # once verified, the same invitation works
    EmailAddress.objects.create(user=invitee, email=invitee.email, primary=True, verified=True)
    assert client_for(invitee).post(f"/api/v1/teams/invitations/{invitation['id']}/accept").status_code == 200


def test_someone_elses_invitation_is_404_by_id(team, owner, make_user, client_for):
    stranger = make_user("s@elsewhere.example", email_verified=True)
    invitation = _invite(client_for(owner), team, "v@agency.example").json()

    response = client_for(stranger).post(f"/api/v1/teams/invitations/{invitation['id']}/accept")

    assert response.status_code == 404


def test_accepting_by_the_emailed_token(team, owner, make_user, client_for, django_capture_on_commit_callbacks):
    invitee = make_user("v@agency.example", email_verified=True)
    other = make_user("o@agency.example", email_verified=True)
    with django_capture_on_commit_callbacks(execute=True):
        _invite(client_for(owner), team, "v@agency.example")
    token = _token_from_mail()

    wrong_account = client_for(other).post("/api/v1/teams/invitations/accept", {"token": token}, format="json")
    bad_token = client_for(invitee).post("/api/v1/teams/invitations/accept", {"token": "nope"}, format="json")
    accepted = client_for(invitee).post("/api/v1/teams/invitations/accept", {"token": token}, format="json")

    assert wrong_account.status_code == 403
    assert wrong_account.json()["code"] == "email_not_verified"
    assert bad_token.status_code == 404
    assert bad_token.json()["code"] == "invitation_not_found"
    assert accepted.status_code == 200
    assert Membership.objects.get(user=invitee).team_id == team.pk


def test_an_expired_invitation_cannot_be_accepted(team, owner, make_user, client_for):
    invitee = make_user("v@agency.example", email_verified=True)
    invitation = _invite(client_for(owner), team, "v@agency.example").json()
    Invitation.objects.filter(pk=invitation["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))

    response = client_for(invitee).post(f"/api/v1/teams/invitations/{invitation['id']}/accept")

    assert response.status_code == 409
    assert response.json()["code"] == "invitation_expired"


def test_a_member_of_another_team_cannot_accept(team, make_team, owner, make_user, client_for):
    busy = make_user("v@agency.example", email_verified=True)
    make_team(user=busy, name="Own", seats=1)
    invitation = _invite(client_for(owner), team, "v@agency.example").json()

    response = client_for(busy).post(f"/api/v1/teams/invitations/{invitation['id']}/accept")

    assert response.status_code == 409
    assert response.json()["code"] == "already_in_team"


@pytest.mark.django_db(transaction=True)
def test_two_people_racing_for_the_last_seat_exactly_one_wins(make_team, owner, make_user, client_for):
    # given two pending invitations, then the seats cut to one free seat
    team = make_team(seats=3)
    first = make_user("a@agency.example", email_verified=True)
    second = make_user("b@agency.example", email_verified=True)
    ids = [_invite(client_for(owner), team, user.email).json()["id"] for user in (first, second)]
    team_seats_grant(team=team, seats=2, until=None, actor=None)
    clients = [client_for(first), client_for(second)]

    # when both accept at the same moment
    barrier = threading.Barrier(2)
    answers: list[int] = [0, 0]

    def accept(index: int) -> None:
        try:
            barrier.wait()
            answers[index] = clients[index].post(f"/api/v1/teams/invitations/{ids[index]}/accept").status_code
        finally:
            connections.close_all()

    threads = [threading.Thread(target=accept, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then exactly one joined; the other found no free seat
    assert sorted(answers) == [200, 409]
    assert Membership.objects.filter(team=team).count() == 2


def test_the_browser_link_asks_to_sign_in_then_accepts(
    team, owner, make_user, client_for, django_capture_on_commit_callbacks
):
    from django.test import Client

    # given an e-mailed invitation
    invitee = make_user("v@agency.example", email_verified=True)
    with django_capture_on_commit_callbacks(execute=True):
        _invite(client_for(owner), team, "v@agency.example")
    token = _token_from_mail()
    browser = Client()

    # when the link is opened signed out, then signed in, then accepted
    signed_out = browser.get(f"/teams/accept?token={token}")
    browser.force_login(invitee)
    page = browser.get(f"/teams/accept?token={token}")
    accepted = browser.post("/teams/accept", {"token": token})

    # then
    assert signed_out.status_code == 302
    assert "/accounts/login/" in signed_out["Location"]
    assert page.status_code == 200
    assert "Join Agency" in page.content.decode()
    assert accepted.status_code == 200
    assert "You joined Agency" in accepted.content.decode()
    assert Membership.objects.get(user=invitee).team_id == team.pk


def test_the_browser_page_shows_why_it_could_not_accept(team, owner, make_user, client_for):
    from django.test import Client

    browser = Client()
    browser.force_login(make_user("v@agency.example", email_verified=True))

    response = browser.get("/teams/accept?token=not-a-token")

    assert response.status_code == 404
    assert "not valid any more" in response.content.decode()


def test_a_failing_mail_server_does_not_undo_the_invitation(
    team, owner, client_for, monkeypatch, django_capture_on_commit_callbacks
):
    from apps.teams import invitations

    def broken(*args, **kwargs):
        raise ConnectionRefusedError("smtp down")

    monkeypatch.setattr(invitations, "send_mail", broken)

    with django_capture_on_commit_callbacks(execute=True):
        response = _invite(client_for(owner), team, "new@agency.example")

    assert response.status_code == 201
    assert Invitation.objects.filter(email="new@agency.example").exists()
