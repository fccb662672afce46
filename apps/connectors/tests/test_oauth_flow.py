"""The OAuth connect flow: authorize (state + PKCE), callback, and every way a callback is refused."""

from __future__ import annotations

import base64
import hashlib

import pytest
from django.db import connection
from rest_framework.test import APIClient

from apps.accounts.models import Tier
from apps.accounts.testing import client_for
from apps.connectors.grants import grant_tokens
from apps.connectors.models import GrantStatus, OAuthAuthorization, OAuthGrant
from apps.core.models import AuditEvent

from .conftest import query_of

pytestmark = pytest.mark.django_db


def _authorize(user, provider: str = "gmail") -> dict[str, str]:
    response = client_for(user).get(f"/api/v1/oauth/{provider}/authorize")
    assert response.status_code == 200, response.json()
    return query_of(response.json()["authorization_url"])


def _callback(provider: str, **params: str):
    return APIClient().get(f"/api/v1/oauth/{provider}/callback", params)


def test_authorize_answers_a_provider_url_with_state_and_an_s256_pkce_challenge(user, fake):
    # when
    response = client_for(user).get("/api/v1/oauth/gmail/authorize")

    # then the URL is Google's, with our client, redirect URI, scopes, state and an S256 challenge
    url = response.json()["authorization_url"]
    params = query_of(url)
    assert url.startswith(f"{fake.url}/google/authorize?")
    assert params["client_id"] == "google-client-id"
    assert params["redirect_uri"] == "https://api.example.test/api/v1/oauth/gmail/callback"
    assert params["scope"] == "https://www.googleapis.com/auth/gmail.readonly openid email"
    assert params["code_challenge_method"] == "S256"
    assert len(params["code_challenge"]) == 43  # base64url of a SHA-256, unpadded
    assert params["access_type"] == "offline"
    # and the state is stored only as a hash, the verifier only encrypted
    pending = OAuthAuthorization.objects.get(user=user)
    assert pending.state_hash == hashlib.sha256(params["state"].encode()).hexdigest()
    assert params["state"] not in pending.state_hash


def test_microsoft_authorize_uses_the_tenant_and_the_provider_scopes(user, fake):
    params = _authorize(user, "teams")

    assert params["scope"] == (
        "https://graph.microsoft.com/ChannelMessage.Read.All https://graph.microsoft.com/Chat.Read offline_access"
    )
    assert fake.url in client_for(user).get("/api/v1/oauth/outlook/authorize").json()["authorization_url"]
    assert (
        "/ms/common/oauth2/v2.0/authorize"
        in client_for(user).get("/api/v1/oauth/outlook/authorize").json()["authorization_url"]
    )


def test_callback_exchanges_the_code_with_the_verifier_and_stores_tokens_encrypted(user, fake):
    # given an authorization the user consented to
    params = _authorize(user)
    code = fake.issue_code(code_challenge=params["code_challenge"], family="google")

    # when the provider redirects back
    response = _callback("gmail", code=code, state=params["state"])

    # then the grant is connected; the answer carries a reference, never a token
    assert response.status_code == 200, response.json()
    body = response.json()
    grant = OAuthGrant.objects.get(user=user, provider="gmail")
    assert body == {
        "ok": True,
        "provider": "gmail",
        "grant_id": str(grant.id),
        "status": "active",
        "encrypted_token": str(grant.id),
    }
    issued = fake.state.grants[-1]
    assert issued.access_token not in response.content.decode()
    # the fake checked the PKCE verifier against the challenge: the exchange succeeding proves it
    assert fake.requests_to("/google/token")[-1]["form"]["code_verifier"]
    # at rest: a raw read of the table holds neither token
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM connectors_oauthgrant")
        raw = repr(cursor.fetchall())
    assert issued.access_token not in raw
    assert issued.refresh_token not in raw
    assert grant_tokens(grant=grant).refresh_token == issued.refresh_token
    assert grant.status == GrantStatus.ACTIVE
    assert grant.access_expires_at is not None
    assert AuditEvent.objects.filter(action="grant.connected", target_id=str(grant.id), actor=user).exists()


def test_a_forged_state_is_refused_and_nothing_is_stored(user, fake):
    params = _authorize(user)
    code = fake.issue_code(code_challenge=params["code_challenge"], family="google")

    response = _callback("gmail", code=code, state="forged-" + params["state"][7:])

    assert response.status_code == 400
    assert response.json()["code"] == "oauth_state_invalid"
    assert not OAuthGrant.objects.exists()
    assert fake.count("POST", "/google/token") == 0


def test_a_replayed_callback_is_refused_and_changes_nothing(user, fake):
    # given a completed connection
    params = _authorize(user)
    code = fake.issue_code(code_challenge=params["code_challenge"], family="google")
    assert _callback("gmail", code=code, state=params["state"]).status_code == 200
    grant = OAuthGrant.objects.get(user=user)

    # when the same callback arrives again
    response = _callback("gmail", code=code, state=params["state"])

    # then it is refused before any exchange, and the grant is untouched
    assert response.status_code == 400
    assert response.json()["code"] == "oauth_state_used"
    assert fake.count("POST", "/google/token") == 1
    again = OAuthGrant.objects.get(user=user)
    assert bytes(again.token_ciphertext) == bytes(grant.token_ciphertext)
    assert again.updated_at == grant.updated_at


def test_an_expired_state_is_refused(user, fake):
    params = _authorize(user)
    code = fake.issue_code(code_challenge=params["code_challenge"], family="google")
    OAuthAuthorization.objects.filter(user=user).update(expires_at="2000-01-01T00:00:00Z")

    response = _callback("gmail", code=code, state=params["state"])

    assert response.status_code == 400
    assert response.json()["code"] == "oauth_state_expired"
    assert not OAuthGrant.objects.exists()


def test_a_state_is_bound_to_its_user_and_provider(user, make_user, fake):
    # given alice's pending gmail authorization
    bob = make_user("bob@example.com")
    params = _authorize(user)
    code = fake.issue_code(code_challenge=params["code_challenge"], family="google")

    # when it is presented for another provider, or by bob's session
    other_provider = _callback("outlook", code=code, state=params["state"])
    bob_session = client_for(bob).get("/api/v1/oauth/gmail/callback", {"code": code, "state": params["state"]})

    # then both are refused, and bob never sees a grant
    assert other_provider.json()["code"] == "oauth_state_invalid"
    assert bob_session.status_code == 400
    assert bob_session.json()["code"] == "oauth_state_invalid"
    assert not OAuthGrant.objects.exists()
    assert client_for(bob).get("/api/v1/oauth/grants").json() == []


def test_the_provider_saying_no_is_a_400_with_a_stable_code(user, fake):
    params = _authorize(user)

    response = _callback("gmail", error="access_denied", state=params["state"])

    assert response.status_code == 400
    assert response.json()["code"] == "oauth_provider_error"
    assert "access_denied" in response.json()["message"]


def test_a_code_the_provider_refuses_is_oauth_exchange_failed(user, fake):
    params = _authorize(user)

    response = _callback("gmail", code="never-issued", state=params["state"])

    assert response.status_code == 400
    assert response.json()["code"] == "oauth_exchange_failed"
    assert not OAuthGrant.objects.exists()


def test_unknown_providers_are_404_everywhere(user):
    client = client_for(user)

    answers = [
        client.get("/api/v1/oauth/yahoo/authorize"),
        APIClient().get("/api/v1/oauth/yahoo/callback", {"state": "x", "code": "y"}),
        client.post("/api/v1/oauth/yahoo/refresh"),
        client.delete("/api/v1/oauth/yahoo"),
    ]

    assert [a.status_code for a in answers] == [404] * 4
    assert {a.json()["code"] for a in answers} == {"provider_unknown"}


def test_an_unconfigured_provider_says_what_to_set(user, settings):
    settings.MICROSOFT_OAUTH_CLIENT_SECRET = ""

    response = client_for(user).get("/api/v1/oauth/outlook/authorize")

    assert response.status_code == 503
    assert response.json()["code"] == "provider_not_configured"
    assert "MICROSOFT_OAUTH_CLIENT_SECRET" in response.json()["message"]


def test_authorize_needs_a_jwt(db):
    assert APIClient().get("/api/v1/oauth/gmail/authorize").status_code == 401


def test_free_tier_may_connect_one_provider_and_reconnect_it(user, connect):
    # given a free user with gmail connected
    assert user.tier == Tier.FREE
    connect(user, "gmail")
    client = client_for(user)

    # when they try a second provider, and reconnect the first
    second = client.get("/api/v1/oauth/outlook/authorize")
    reconnect = client.get("/api/v1/oauth/gmail/authorize")

    # then the second is gated, the reconnect is not
    assert second.status_code == 403
    assert second.json()["code"] == "limit_reached"
    assert second.json()["feature"] == "providers"
    assert reconnect.status_code == 200


def test_the_gate_is_checked_again_at_callback(user, fake):
    # given two authorizations started while nothing was connected
    gmail = _authorize(user, "gmail")
    outlook = _authorize(user, "outlook")
    gmail_code = fake.issue_code(code_challenge=gmail["code_challenge"], family="google")
    outlook_code = fake.issue_code(code_challenge=outlook["code_challenge"], family="microsoft")

    # when both complete
    first = _callback("gmail", code=gmail_code, state=gmail["state"])
    second = _callback("outlook", code=outlook_code, state=outlook["state"])

    # then only the first is connected
    assert first.status_code == 200
    assert second.status_code == 403
    assert second.json()["code"] == "limit_reached"
    assert list(OAuthGrant.objects.values_list("provider", flat=True)) == ["gmail"]


def test_a_paid_tier_connects_several_providers(make_user, connect):
    pro = make_user("pro@example.com", tier=Tier.PRO)

    connect(pro, "gmail")
    connect(pro, "outlook")
    connect(pro, "teams")

    providers = [g["provider"] for g in client_for(pro).get("/api/v1/oauth/grants").json()]
    assert providers == ["gmail", "outlook", "teams"]


def test_pkce_challenge_is_s256_of_the_verifier():
    from apps.connectors.authorizations import pkce_challenge

    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"  # RFC 7636 appendix B

    assert pkce_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    assert pkce_challenge(verifier) == base64.urlsafe_b64encode(
        hashlib.sha256(verifier.encode()).digest()
    ).decode().rstrip("=")


def test_a_consent_without_the_mail_scope_is_refused(user, fake):
    # given the user deselected Gmail access on Google's consent page
    params = _authorize(user)
    code = fake.issue_code(code_challenge=params["code_challenge"], family="google")
    fake.granted_scope = "openid https://www.googleapis.com/auth/userinfo.email"

    response = _callback("gmail", code=code, state=params["state"])

    assert response.status_code == 400
    assert response.json()["code"] == "oauth_scope_missing"
    assert not OAuthGrant.objects.exists()


def test_microsoft_scopes_may_come_back_as_short_names(make_user, fake):
    pro = make_user("pro@example.com", tier=Tier.PRO)
    params = _authorize(pro, "outlook")
    code = fake.issue_code(code_challenge=params["code_challenge"], family="microsoft")
    fake.granted_scope = "Mail.Read User.Read offline_access"

    response = _callback("outlook", code=code, state=params["state"])

    assert response.status_code == 200
    assert OAuthGrant.objects.get(user=pro).scopes == ["Mail.Read", "User.Read", "offline_access"]
