"""The whole SSO journey through allauth's real OpenID Connect provider, against a loopback
identity provider: the providers list, the browser login, the code handed to the app, the tokens."""

from __future__ import annotations

from urllib.error import HTTPError
from urllib.parse import parse_qs, urlsplit
from urllib.request import HTTPRedirectHandler, build_opener

import pytest
from allauth.socialaccount.models import SocialAccount
from django.test import Client
from django.utils import timezone

from apps.accounts.models import Tier, User, UserKey

from .fake_oidc import FakeOidcProvider

pytestmark = pytest.mark.django_db

CLIENT_ID = "adiuva-desktop"
SUBJECT = "idp-user-42"
PROVIDER_ID = "sso"


class _NoRedirect(HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _follow_to_identity_provider(url: str) -> str:
    """What the browser does at the identity provider: arrive, sign in, get sent back (Location)."""
    try:
        build_opener(_NoRedirect).open(url)
    except HTTPError as redirect:  # urllib raises HTTPError for the 302 it did not follow
        return redirect.headers["Location"]
    raise AssertionError("the identity provider did not redirect back")


@pytest.fixture
def identity_provider(settings):
    provider = FakeOidcProvider(client_id=CLIENT_ID, subject=SUBJECT, email="lead@team.example").start()
    settings.SOCIALACCOUNT_PROVIDERS = {
        "openid_connect": {
            "APPS": [
                {
                    "provider_id": PROVIDER_ID,
                    "name": "Team sign-on",
                    "client_id": CLIENT_ID,
                    "secret": "fake-secret",
                    "settings": {"server_url": provider.url},
                }
            ]
        }
    }
    yield provider
    provider.stop()


def _browser_login(api_client, *, state: str) -> tuple[Client, object]:
    """The desktop app asks for the providers and opens the login URL in the browser; the browser
    signs in at the identity provider and comes back; returns the browser and the final response."""
    providers = api_client.get("/api/v1/auth/sso/providers", {"state": state}).json()["providers"]
    login_url = next(p["login_url"] for p in providers if p["id"] == PROVIDER_ID)
    browser = Client()
    to_provider = browser.post(urlsplit(login_url).path + "?" + urlsplit(login_url).query)  # allauth's "Continue"
    assert to_provider.status_code == 302, to_provider.content
    back = urlsplit(_follow_to_identity_provider(to_provider["Location"]))
    after_login = browser.get(f"{back.path}?{back.query}")
    assert after_login.status_code == 302, after_login.content
    return browser, browser.get(after_login["Location"])  # allauth's next: the code-issuing page


def test_the_providers_list_offers_each_configured_provider_with_its_login_url(identity_provider, api_client):
    response = api_client.get("/api/v1/auth/sso/providers", {"state": "abc"})

    assert response.status_code == 200
    [provider] = response.json()["providers"]
    assert provider["id"] == PROVIDER_ID
    assert provider["name"] == "Team sign-on"
    login = urlsplit(provider["login_url"])
    assert login.path == f"/accounts/oidc/{PROVIDER_ID}/login/"
    assert parse_qs(login.query)["next"] == ["/api/v1/auth/sso/complete?state=abc"]


def test_a_team_member_signs_in_through_the_identity_provider_and_the_app_gets_tokens(
    identity_provider, api_client, make_user
):
    # given a team account linked to its identity at the organisation's provider
    member = make_user("lead@team.example", email_verified=True, tier=Tier.TEAM)
    SocialAccount.objects.create(user=member, provider=PROVIDER_ID, uid=SUBJECT)

    # when the browser goes through the provider's login
    _, response = _browser_login(api_client, state="nonce-1")

    # then it is sent to the desktop app with a code and the app's state
    assert response.status_code == 302, response.content
    location = urlsplit(response["Location"])
    assert location.scheme == "adiuva"
    query = parse_qs(location.query)
    assert query["state"] == ["nonce-1"]
    # and the code buys tokens of that member
    tokens = api_client.post("/api/v1/auth/sso/exchange", {"code": query["code"][0]})
    assert tokens.status_code == 200
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens.json()['access_token']}")
    assert api_client.get("/api/v1/auth/me").json()["id"] == str(member.id)
    assert ("POST", "/token") in identity_provider.requests


def test_a_new_person_signing_up_through_the_provider_gets_a_key_but_no_code_below_team(identity_provider, api_client):
    # when someone unknown signs in through the provider (allauth signs them up, free tier)
    _, response = _browser_login(api_client, state="nonce-2")

    # then the account exists with its own key, and the page says SSO needs the team plan
    user = User.objects.get(email="lead@team.example")
    assert UserKey.objects.filter(user=user).exists()
    assert response.status_code == 403
    assert "feature_not_available" in response.content.decode()


def _team_with_proven_domain(make_user, *, seats: int):
    from apps.teams.models import TeamDomain
    from apps.teams.seats import team_seats_grant
    from apps.teams.services import team_create

    owner = make_user("owner@team.example", email_verified=True)
    team = team_create(user=owner, name="Team")
    team_seats_grant(team=team, seats=seats, until=None, actor=None)
    TeamDomain.objects.create(team=team, domain="team.example", verification_token="t", verified_at=timezone.now())
    return team


def test_the_server_provider_vouching_for_a_proven_domain_does_not_join_that_team(
    identity_provider, api_client, make_user
):
    from apps.teams.models import Membership

    # given a team that proved team.example, with a free seat and its own provider registered
    team = _team_with_proven_domain(make_user, seats=2)
    _register_team_provider(team, "https://login.team.example")

    # when someone new at team.example signs in through the server's provider, not the team's
    _, response = _browser_login(api_client, state="nonce-3")

    # then they are not in the team: a free account, and the code step says SSO needs the team plan
    user = User.objects.get(email="lead@team.example")
    assert not Membership.objects.filter(user=user).exists()
    assert User.objects.get(pk=user.pk).tier == Tier.FREE
    assert response.status_code == 403
    assert "feature_not_available" in response.content.decode()


def test_with_no_free_seat_the_server_provider_still_signs_a_person_up_outside_the_team(
    identity_provider, api_client, make_user
):
    from apps.teams.models import Membership

    # given a team of one seat that proved team.example
    _team_with_proven_domain(make_user, seats=1)

    # when someone new at team.example signs in through the server's provider
    _browser_login(api_client, state="nonce-4")

    # then the team's seats are not its business: the account is made, outside the team
    user = User.objects.get(email="lead@team.example")
    assert not Membership.objects.filter(user=user).exists()


def _register_team_provider(team, issuer: str, *, client_id: str = CLIENT_ID):
    """Through the API, as the team's owner: the loopback provider is an internal host speaking
    http, which the ``team_identity_provider`` fixture allows the way an on-premises operator would."""
    from rest_framework.test import APIClient

    from apps.accounts.tokens import tokens_issue

    owner = team.memberships.get(role="owner").user
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens_issue(user=owner).access_token}")
    body = {"issuer": issuer, "client_id": client_id, "secret": "team-secret"}
    response = client.put(f"/api/v1/teams/{team.pk}/identity-provider", body, format="json")
    assert response.status_code == 200, response.content
    return response


@pytest.fixture
def team_identity_provider(settings):
    provider = FakeOidcProvider(client_id="team-client", subject="team-user-7", email="lead@team.example").start()
    settings.TEAM_IDP_ALLOWED_PRIVATE_HOSTS = ["127.0.0.1"]
    yield provider
    provider.stop()


def _team_browser_login(api_client, team, *, state: str, email: str = "lead@team.example"):
    """Like ``_browser_login`` through the team's own provider, found by the person's work address;
    returns the browser, the response of allauth's callback and the final response (None if stopped)."""
    providers = api_client.get("/api/v1/auth/sso/providers", {"state": state, "email": email}).json()["providers"]
    login_url = next(p["login_url"] for p in providers if p["id"] == f"team-{team.pk}")
    browser = Client()
    to_provider = browser.post(urlsplit(login_url).path + "?" + urlsplit(login_url).query)
    assert to_provider.status_code == 302, to_provider.content
    back = urlsplit(_follow_to_identity_provider(to_provider["Location"]))
    after_login = browser.get(f"{back.path}?{back.query}")
    if after_login.status_code != 302:
        return browser, after_login, None
    return browser, after_login, browser.get(after_login["Location"])


def test_the_providers_list_names_a_team_provider_only_for_an_address_of_its_proven_domain(
    identity_provider, team_identity_provider, api_client, make_user
):
    # given a team that proved team.example and registered its own provider
    team = _team_with_proven_domain(make_user, seats=2)
    _register_team_provider(team, team_identity_provider.url, client_id="team-client")

    # when the app asks without an address, with an address of the domain, and of another domain
    anonymous = api_client.get("/api/v1/auth/sso/providers", {"state": "s"}).json()["providers"]
    of_team = api_client.get("/api/v1/auth/sso/providers", {"state": "s", "email": "a@Team.example"}).json()
    elsewhere = api_client.get("/api/v1/auth/sso/providers", {"email": "a@other.example"}).json()

    # then only the team's people are offered its provider, first, under the team's name
    assert [p["id"] for p in anonymous] == [PROVIDER_ID]
    assert [p["id"] for p in of_team["providers"]] == [f"team-{team.pk}", PROVIDER_ID]
    assert of_team["providers"][0]["name"] == "Team"
    assert urlsplit(of_team["providers"][0]["login_url"]).path == f"/accounts/oidc/team-{team.pk}/login/"
    assert [p["id"] for p in elsewhere["providers"]] == [PROVIDER_ID]


def test_a_new_person_signing_in_through_the_team_provider_joins_just_in_time_and_gets_a_code(
    team_identity_provider, api_client, make_user
):
    from apps.teams.models import Membership

    # given a team that proved team.example, with a free seat and its own provider
    team = _team_with_proven_domain(make_user, seats=2)
    _register_team_provider(team, team_identity_provider.url, client_id="team-client")

    # when someone new at team.example signs in through the team's provider
    _, _, response = _team_browser_login(api_client, team, state="nonce-5")

    # then they joined as a member, have the team tier, and the app gets its code
    user = User.objects.get(email="lead@team.example")
    assert Membership.objects.get(user=user).team_id == team.pk
    assert User.objects.get(pk=user.pk).tier == Tier.TEAM
    assert SocialAccount.objects.get(user=user).provider == f"team-{team.pk}"
    assert response.status_code == 302, response.content
    assert "code" in parse_qs(urlsplit(response["Location"]).query)
    # and allauth authenticated at the provider with the team's decrypted client secret
    assert ("POST", "/token") in team_identity_provider.requests
    assert team_identity_provider.client_secrets == ["team-secret"]


def test_no_free_seat_stops_the_sign_up_with_a_clear_page_and_no_account(team_identity_provider, api_client, make_user):
    # given a team of one seat (its owner's) that proved team.example and has its own provider
    team = _team_with_proven_domain(make_user, seats=1)
    _register_team_provider(team, team_identity_provider.url, client_id="team-client")

    # when someone new at team.example signs in through the team's provider
    _, response, _ = _team_browser_login(api_client, team, state="nonce-6")

    # then the page says why, the desktop app gets the error, and no account was made
    assert response.status_code == 409
    body = response.content.decode()
    assert "no_free_seat" in body
    assert "error=no_free_seat" in body
    assert not User.objects.filter(email="lead@team.example").exists()


def test_another_team_provider_vouching_for_a_proven_domain_joins_nobody_and_is_not_trusted_for_it(
    team_identity_provider, api_client, make_user
):
    from allauth.account.models import EmailAddress

    from apps.teams.models import Membership, TeamDomain
    from apps.teams.services import team_create

    # given team.example proven by one team, and another team whose provider claims a team.example address
    team = _team_with_proven_domain(make_user, seats=2)
    intruder = team_create(user=make_user("boss@rogue.example", email_verified=True), name="Rogue")
    TeamDomain.objects.create(team=intruder, domain="rogue.example", verification_token="r", verified_at=timezone.now())
    _register_team_provider(intruder, team_identity_provider.url, client_id="team-client")

    # when someone signs in through the other team's provider with that address
    _, _, response = _team_browser_login(api_client, intruder, state="nonce-7", email="x@rogue.example")

    # then nobody joins either team, and the address is not taken as verified on that provider's word
    user = User.objects.get(email="lead@team.example")
    assert not Membership.objects.filter(user=user).exists()
    assert Membership.objects.filter(team=team).count() == 1
    assert not EmailAddress.objects.filter(user=user, verified=True).exists()
    assert response is not None
    assert response.status_code == 403


def _team_login_started(api_client, team, *, state: str):
    """The browser asks allauth to start the team's sign-in; the server fetches the discovery document."""
    providers = api_client.get("/api/v1/auth/sso/providers", {"state": state, "email": "a@team.example"}).json()
    login_url = next(p["login_url"] for p in providers["providers"] if p["id"] == f"team-{team.pk}")
    return Client().post(urlsplit(login_url).path + "?" + urlsplit(login_url).query)


def test_a_team_provider_on_an_internal_address_is_refused_at_fetch_time(
    team_identity_provider, api_client, make_user, settings
):
    # given a provider registered while its host was allowed, that the operator no longer allows
    # (as when a public name's DNS answer turns internal after registration)
    team = _team_with_proven_domain(make_user, seats=2)
    _register_team_provider(team, team_identity_provider.url, client_id="team-client")
    settings.TEAM_IDP_ALLOWED_PRIVATE_HOSTS = []

    # when someone starts signing in through it
    response = _team_login_started(api_client, team, state="nonce-8")

    # then the server did not reach the provider, and the browser gets allauth's error page, not a 500
    assert team_identity_provider.requests == []
    assert response.status_code == 401, response.content
    assert not User.objects.filter(email="lead@team.example").exists()


def test_a_redirect_from_an_allowed_team_provider_to_an_internal_host_is_refused(
    team_identity_provider, api_client, make_user, settings
):
    # given an allowed provider whose discovery redirects to another internal host, not allowed
    inner = FakeOidcProvider(client_id="team-client", subject="x", email="lead@team.example").start()
    try:
        settings.TEAM_IDP_ALLOWED_PRIVATE_HOSTS = ["localhost"]
        team = _team_with_proven_domain(make_user, seats=2)
        port = team_identity_provider.server.socket.getsockname()[1]
        _register_team_provider(team, f"http://localhost:{port}", client_id="team-client")
        team_identity_provider.discovery_redirect = f"{inner.url}/.well-known/openid-configuration"

        # when someone starts signing in through it
        response = _team_login_started(api_client, team, state="nonce-9")

        # then the redirect's target was never asked
        assert team_identity_provider.requests == [("GET", "/.well-known/openid-configuration")]
        assert inner.requests == []
        assert response.status_code == 401, response.content
    finally:
        inner.stop()


def test_the_endpoints_a_team_provider_names_are_guarded_too(team_identity_provider, api_client, make_user, settings):
    # given an allowed provider (by name) whose discovery names its token endpoint on an address not allowed
    settings.TEAM_IDP_ALLOWED_PRIVATE_HOSTS = ["localhost"]
    team = _team_with_proven_domain(make_user, seats=2)
    port = team_identity_provider.server.socket.getsockname()[1]
    _register_team_provider(team, f"http://localhost:{port}", client_id="team-client")

    # when someone signs in through it
    _, after_login, _ = _team_browser_login(api_client, team, state="nonce-10")

    # then the server never called the token endpoint, and no account was made
    assert ("POST", "/token") not in team_identity_provider.requests
    assert after_login.status_code == 401, after_login.content
    assert not User.objects.filter(email="lead@team.example").exists()
