"""Team e-mail domains: claimed by an owner or admin, proven by a DNS TXT record (a stub resolver
stands in for DNS) or by staff in the admin; audited; one team per domain."""

from __future__ import annotations

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.test import Client

from apps.core.audit import AuditAction
from apps.core.models import AuditEvent
from apps.teams import domains
from apps.teams.models import Membership, TeamDomain, TeamRole

pytestmark = pytest.mark.django_db


@pytest.fixture
def published(monkeypatch) -> dict[str, list[str]]:
    """The TXT records the stub DNS answers, by name."""
    records: dict[str, list[str]] = {}
    monkeypatch.setattr(domains, "dns_txt_records", lambda name: records.get(name, []))
    return records


def _claim(client, team, domain: str):
    return client.post(f"/api/v1/teams/{team.pk}/domains", {"domain": domain}, format="json")


def test_a_domain_is_proven_by_its_txt_record(team, owner, client_for, published):
    # given a claimed domain
    client = client_for(owner)
    claimed = _claim(client, team, "Agency.Example.")
    assert claimed.status_code == 201
    body = claimed.json()
    assert (body["domain"], body["verified"]) == ("agency.example", False)
    assert body["txt_record"].startswith("adiuva-verification=")
    verify = f"/api/v1/teams/{team.pk}/domains/{body['id']}/verify"

    # when verified before the record is published, then after
    early = client.post(verify)
    published["agency.example"] = ["v=spf1 -all", body["txt_record"]]
    proven = client.post(verify)

    # then
    assert early.status_code == 409
    assert early.json()["code"] == "domain_not_proven"
    assert early.json()["txt_record"] == body["txt_record"]
    assert proven.status_code == 200
    assert (proven.json()["verified"], proven.json()["verified_by"]) == (True, "dns")
    event = AuditEvent.objects.get(action=AuditAction.TEAM_DOMAIN_VERIFIED)
    assert event.data["by"] == "dns"
    assert domains.team_for_verified_domain(email="someone@agency.example") == team


def test_a_domain_belongs_to_one_team_and_members_cannot_claim(team, make_team, make_user, client_for, published):
    other_owner = make_user(email_verified=True)
    other = make_team(user=other_owner, name="Other")
    member = make_user()
    Membership.objects.create(team=team, user=member, role=TeamRole.MEMBER)
    _claim(client_for(other_owner), other, "agency.example")

    taken = _claim(client_for(other_owner), other, "agency.example")
    by_member = _claim(client_for(member), team, "mine.example")
    bad = _claim(client_for(other_owner), other, "not a domain")

    assert taken.status_code == 409
    assert taken.json()["code"] == "domain_taken"
    assert by_member.status_code == 403
    assert by_member.json()["code"] == "team_role_required"
    assert bad.status_code == 400
    assert TeamDomain.objects.count() == 1


def test_an_unproven_domain_does_not_count(team, owner, client_for):
    _claim(client_for(owner), team, "agency.example")

    assert domains.team_for_verified_domain(email="someone@agency.example") is None


def test_staff_verify_a_domain_in_the_admin(team, owner, client_for, make_user):
    row_id = _claim(client_for(owner), team, "agency.example").json()["id"]
    staff = Client()
    staff.force_login(make_user("staff@adiuva.example", is_staff=True, is_superuser=True))

    response = staff.post("/admin/teams/teamdomain/", {"action": "verify", ACTION_CHECKBOX_NAME: [row_id], "index": 0})

    assert response.status_code == 302
    row = TeamDomain.objects.get(pk=row_id)
    assert (row.is_verified, row.verified_by) == (True, "staff")
    event = AuditEvent.objects.get(action=AuditAction.TEAM_DOMAIN_VERIFIED)
    assert event.actor is not None
    assert event.actor.email == "staff@adiuva.example"
    assert "agency.example" in staff.get(f"/admin/teams/team/{team.pk}/change/").content.decode()
