"""SSO into the desktop client: after the browser login, a team user's browser is sent to the app
with a one-time code, which the app trades for its tokens once; other tiers get no code."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from django.utils import timezone

from apps.accounts.models import Tier
from apps.sso.models import SsoCode

pytestmark = pytest.mark.django_db

COMPLETE = "/api/v1/auth/sso/complete"
EXCHANGE = "/api/v1/auth/sso/exchange"


def _browser_signed_in(user) -> Client:
    """A browser whose allauth login finished (the session allauth leaves behind)."""
    browser = Client()
    browser.force_login(user, backend="allauth.account.auth_backends.AuthenticationBackend")
    return browser


def _code_from(response) -> str:
    assert response.status_code == 302, response.content
    location = urlsplit(response["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == "adiuva://sso/callback"
    return parse_qs(location.query)["code"][0]


@pytest.fixture
def team_user(make_user):
    return make_user("lead@team.example", email_verified=True, tier=Tier.TEAM)


def test_a_team_user_is_sent_to_the_app_with_a_code_that_buys_its_tokens(team_user, api_client):
    # given the browser login finished
    browser = _browser_signed_in(team_user)

    # when the browser reaches the code-issuing page (with the app's state)
    response = browser.get(COMPLETE, {"state": "app-nonce-123"})

    # then it is redirected to the app with a code and the state, and only the hash is stored
    code = _code_from(response)
    assert parse_qs(urlsplit(response["Location"]).query)["state"] == ["app-nonce-123"]
    assert not SsoCode.objects.filter(code_hash=code).exists()
    # and the app trades the code for tokens of that user (the login response's shape)
    tokens = api_client.post(EXCHANGE, {"code": code})
    assert tokens.status_code == 200
    assert set(tokens.json()) == {"access_token", "refresh_token", "expires_at"}
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens.json()['access_token']}")
    assert api_client.get("/api/v1/auth/me").json()["email"] == team_user.email


def test_a_code_works_once(team_user, api_client):
    code = _code_from(_browser_signed_in(team_user).get(COMPLETE))
    assert api_client.post(EXCHANGE, {"code": code}).status_code == 200

    # when the same code is replayed
    replay = api_client.post(EXCHANGE, {"code": code})

    # then
    assert replay.status_code == 400
    assert replay.json()["code"] == "sso_code_invalid"


def test_an_expired_code_is_refused(team_user, api_client):
    # given a code whose lifetime has passed
    code = _code_from(_browser_signed_in(team_user).get(COMPLETE))
    SsoCode.objects.filter(user=team_user).update(expires_at=timezone.now() - timedelta(seconds=1))

    # when
    response = api_client.post(EXCHANGE, {"code": code})

    # then
    assert response.status_code == 400
    assert response.json()["code"] == "sso_code_expired"


@pytest.mark.parametrize("code", ["never-issued", "x" * 128])
def test_an_unknown_code_is_refused(api_client, code):
    response = api_client.post(EXCHANGE, {"code": code})

    assert response.status_code == 400
    assert response.json()["code"] == "sso_code_invalid"


@pytest.mark.parametrize("body", [{}, {"code": ""}, {"code": "x" * 129}, {"code": ["a"]}])
def test_a_malformed_exchange_is_a_validation_error(api_client, body):
    response = api_client.post(EXCHANGE, body, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"


@pytest.mark.parametrize("tier", [Tier.FREE, Tier.PRO, Tier.POWER])
def test_other_tiers_get_no_code_and_a_clear_page_with_the_gate_code(make_user, tier):
    # given a signed-in browser of a user below the team tier
    user = make_user(email_verified=True, tier=tier)

    # when it reaches the code-issuing page
    response = _browser_signed_in(user).get(COMPLETE, {"state": "s1"})

    # then no code is issued; the page says why and links back to the app with the error
    assert response.status_code == 403
    page = response.content.decode()
    assert "feature_not_available" in page
    assert "team plan" in page
    assert "adiuva://sso/callback?error=feature_not_available" in page
    assert "state=s1" in page
    assert not SsoCode.objects.exists()


def test_an_unverified_team_user_gets_no_code(make_user):
    user = make_user(tier=Tier.TEAM)

    response = _browser_signed_in(user).get(COMPLETE)

    assert response.status_code == 403
    assert "email_not_verified" in response.content.decode()
    assert not SsoCode.objects.exists()


def test_the_page_needs_a_browser_login():
    response = Client().get(COMPLETE)

    assert response.status_code == 401
    assert "sso_not_logged_in" in response.content.decode()


def test_a_user_downgraded_before_the_exchange_gets_the_403_gate(team_user, api_client):
    # given a code issued while on the team tier
    code = _code_from(_browser_signed_in(team_user).get(COMPLETE))
    team_user.tier = Tier.PRO
    team_user.save(update_fields=["tier"])

    # when the app exchanges it
    response = api_client.post(EXCHANGE, {"code": code})

    # then the tier gate answers, naming the feature and the tier that unlocks it
    assert response.status_code == 403
    body = response.json()
    assert body["code"] == "feature_not_available"
    assert body["feature"] == "sso"
    assert body["required_tier"] == "team"


def test_a_disabled_account_cannot_exchange(team_user, api_client):
    code = _code_from(_browser_signed_in(team_user).get(COMPLETE))
    team_user.is_active = False
    team_user.save(update_fields=["is_active"])

    response = api_client.post(EXCHANGE, {"code": code})

    assert response.status_code == 401
    assert response.json()["code"] == "account_disabled"
