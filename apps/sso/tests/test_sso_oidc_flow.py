"""The whole SSO journey through allauth's real OpenID Connect provider, against a loopback
identity provider: the providers list, the browser login, the code handed to the app, the tokens."""

from __future__ import annotations

from urllib.error import HTTPError
from urllib.parse import parse_qs, urlsplit
from urllib.request import HTTPRedirectHandler, build_opener

import pytest
from allauth.socialaccount.models import SocialAccount
from django.test import Client

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
