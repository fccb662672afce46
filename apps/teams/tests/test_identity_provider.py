"""A team's own OpenID Connect provider: registered by its owner or an admin, the secret encrypted at
rest and never returned; members are refused, other teams' ids are not found; audited; in the admin
without the secret. The sign-in through it is tested in apps/sso/tests/test_sso_oidc_flow.py."""

from __future__ import annotations

import io

import pytest
from django.test import Client

from apps.core.audit import AuditAction
from apps.core.models import AuditEvent
from apps.teams.identity_provider import secret_unseal, team_provider_credentials
from apps.teams.models import Membership, TeamIdentityProvider, TeamRole

pytestmark = pytest.mark.django_db

SECRET = "s3cr3t-of-the-agency"


def _url(team) -> str:
    return f"/api/v1/teams/{team.pk}/identity-provider"


def _put(client, team, **body):
    payload = {"issuer": "https://login.agency.example/", "client_id": "adiuva", "secret": SECRET, **body}
    return client.put(_url(team), {k: v for k, v in payload.items() if v is not None}, format="json")


def test_an_admin_registers_the_provider_and_the_secret_rests_encrypted_and_is_never_returned(team, owner, client_for):
    # given no provider yet
    client = client_for(owner)
    assert client.get(_url(team)).status_code == 404

    # when the owner registers it
    response = _put(client, team)

    # then the answer says a secret is stored without showing it
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["issuer"] == "https://login.agency.example"
    assert body["client_id"] == "adiuva"
    assert body["has_secret"] is True
    assert body["provider_id"] == f"team-{team.pk}"
    assert body["callback_url"].endswith(f"/accounts/oidc/team-{team.pk}/login/callback/")
    assert SECRET not in response.content.decode()
    assert SECRET not in client.get(_url(team)).content.decode()
    # and the stored secret is ciphertext that the master keys open
    stored = bytes(TeamIdentityProvider.objects.get(team=team).secret_encrypted)
    assert SECRET.encode() not in stored
    assert secret_unseal(stored) == SECRET
    # and sign-in gets it decrypted, in memory
    credentials = team_provider_credentials(provider_id=f"team-{team.pk}")
    assert credentials is not None
    assert (credentials.issuer, credentials.client_id, credentials.secret) == (
        "https://login.agency.example",
        "adiuva",
        SECRET,
    )
    # and the change is audited without the secret
    event = AuditEvent.objects.get(action=AuditAction.TEAM_IDENTITY_PROVIDER_SET)
    assert event.actor_id == owner.pk
    assert SECRET not in str(event.data)


def test_changing_the_provider_without_a_secret_keeps_the_stored_one(team, owner, client_for):
    client = client_for(owner)
    _put(client, team)

    response = _put(client, team, client_id="adiuva-2", secret=None)

    assert response.status_code == 200
    assert response.json()["client_id"] == "adiuva-2"
    assert secret_unseal(TeamIdentityProvider.objects.get(team=team).secret_encrypted) == SECRET


def test_the_first_registration_needs_a_secret(team, owner, client_for):
    response = _put(client_for(owner), team, secret=None)

    assert response.status_code == 400
    assert response.json()["code"] == "identity_provider_secret_required"
    assert not TeamIdentityProvider.objects.exists()


@pytest.mark.parametrize(
    "issuer",
    [
        "http://login.agency.example",
        "https://",
        "login.agency.example",
        "https://login.agency.example/?tenant=1",
        "https://login.agency.example/#x",
        "https://user:pw@login.agency.example",
        "https://login.agency.example:99999",
        "https://login.agency.example/.well-known/openid-configuration",
        "javascript:alert(1)",
    ],
)
def test_an_issuer_that_is_not_an_https_url_is_refused_with_a_stable_code(team, owner, client_for, issuer):
    response = _put(client_for(owner), team, issuer=issuer)

    assert response.status_code == 400
    assert response.json()["code"] == "issuer_invalid"
    assert "issuer" in response.json()["fields"]
    assert not TeamIdentityProvider.objects.exists()


def test_a_member_is_refused_and_another_team_is_not_found(team, owner, make_team, make_user, client_for):
    # given a member of the team, and the owner of another team
    member = make_user()
    Membership.objects.create(team=team, user=member, role=TeamRole.MEMBER)
    other_owner = make_user(email_verified=True)
    make_team(user=other_owner, name="Other")
    _put(client_for(owner), team)

    # when they read, set or remove this team's provider
    as_member = [
        client_for(member).get(_url(team)),
        _put(client_for(member), team),
        client_for(member).delete(_url(team)),
    ]
    as_other = [
        client_for(other_owner).get(_url(team)),
        _put(client_for(other_owner), team),
        client_for(other_owner).delete(_url(team)),
    ]

    # then
    assert [(r.status_code, r.json()["code"]) for r in as_member] == [(403, "team_role_required")] * 3
    assert [(r.status_code, r.json()["code"]) for r in as_other] == [(404, "team_not_found")] * 3
    assert TeamIdentityProvider.objects.get(team=team).client_id == "adiuva"


def test_an_admin_removes_the_provider_audited(team, owner, make_user, client_for):
    admin_user = make_user()
    Membership.objects.create(team=team, user=admin_user, role=TeamRole.ADMIN)
    _put(client_for(owner), team)

    removed = client_for(admin_user).delete(_url(team))

    assert removed.status_code == 204
    assert client_for(owner).get(_url(team)).status_code == 404
    assert team_provider_credentials(provider_id=f"team-{team.pk}") is None
    assert AuditEvent.objects.filter(action=AuditAction.TEAM_IDENTITY_PROVIDER_REMOVED, actor=admin_user).exists()


def test_the_team_admin_page_shows_the_provider_but_never_its_secret(team, owner, client_for, make_user):
    _put(client_for(owner), team)
    staff = make_user("staff@adiuva.example", is_staff=True, is_superuser=True)
    browser = Client()
    browser.force_login(staff)

    page = browser.get(f"/admin/teams/team/{team.pk}/change/").content.decode()

    assert "https://login.agency.example" in page
    assert "adiuva" in page
    assert "secret stored" in page.lower()
    assert SECRET not in page


@pytest.mark.parametrize(
    "issuer",
    [
        "https://127.0.0.1",
        "https://10.0.0.8",
        "https://169.254.169.254/latest",
        "https://[::1]:8443",
        "https://[::ffff:169.254.169.254]",
        "https://localhost",  # a name: resolved, to loopback
    ],
)
def test_an_issuer_on_an_internal_address_is_refused_with_a_stable_code(team, owner, client_for, issuer):
    response = _put(client_for(owner), team, issuer=issuer)

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "issuer_not_public"
    assert "issuer" in response.json()["fields"]
    assert not TeamIdentityProvider.objects.exists()


@pytest.mark.parametrize("internal", ["127.0.0.1", "10.20.30.40", "169.254.169.254"])
def test_an_issuer_whose_name_resolves_to_an_internal_address_is_refused(team, owner, internal):
    from apps.core.errors import ApplicationError
    from apps.teams.identity_provider import identity_provider_set

    # given a name whose DNS answer is internal
    def resolve(host: str, port: int) -> list[str]:
        assert (host, port) == ("login.agency.example", 443)
        return [internal]

    # when the owner registers it, then it is refused
    with pytest.raises(ApplicationError) as refused:
        identity_provider_set(
            team_id=team.pk,
            actor=owner,
            issuer="https://login.agency.example",
            client_id="adiuva",
            secret=SECRET,
            resolve=resolve,
        )
    assert refused.value.code == "issuer_not_public"
    assert not TeamIdentityProvider.objects.exists()


def test_a_host_the_operator_allowed_may_be_internal_and_speak_plain_http(team, owner, client_for, settings):
    # given an on-premises provider the operator allowed by name
    settings.TEAM_IDP_ALLOWED_PRIVATE_HOSTS = ["localhost", "10.0.0.8"]
    client = client_for(owner)

    # when the owner registers it over http, by name and by address
    by_name = _put(client, team, issuer="http://localhost:8080/realms/agency")
    by_address = _put(client, team, issuer="https://10.0.0.8")

    # then both are accepted; another internal host still is not, nor plain http to a public one
    assert by_name.status_code == 200, by_name.content
    assert by_address.status_code == 200, by_address.content
    assert _put(client, team, issuer="https://127.0.0.1").json()["code"] == "issuer_not_public"
    assert _put(client, team, issuer="http://login.agency.example").json()["code"] == "issuer_invalid"


def test_master_key_rotation_re_encrypts_the_provider_secret(team, owner, client_for, settings):
    from cryptography.fernet import Fernet
    from django.core.management import call_command

    from apps.accounts import keys
    from apps.core import encryption

    # given a provider whose secret is sealed under the current master key
    assert _put(client_for(owner), team).status_code == 200
    old_master = settings.FERNET_MASTER_KEYS[0]
    new_master = Fernet.generate_key().decode()
    try:
        # when a new master key is put first and the rotation runs
        settings.FERNET_MASTER_KEYS = [new_master, old_master]
        encryption._master.cache_clear()
        keys.user_keys_forget()
        call_command("rotate_master_keys", "--batch-size", "1", stdout=io.StringIO())

        # then, the old key dropped, sign-in still gets the secret
        settings.FERNET_MASTER_KEYS = [new_master]
        encryption._master.cache_clear()
        credentials = team_provider_credentials(provider_id=f"team-{team.pk}")
        assert credentials is not None
        assert credentials.secret == SECRET
        # and the rotation's audit row counts it
        event = AuditEvent.objects.get(action=AuditAction.MASTER_KEYS_ROTATED)
        assert event.data["team_identity_provider_secrets"] == 1
    finally:
        settings.FERNET_MASTER_KEYS = [old_master]
        encryption._master.cache_clear()
        keys.user_keys_forget()
