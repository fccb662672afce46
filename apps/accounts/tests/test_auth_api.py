"""The desktop client's auth contract: register, login, me, refresh rotation, reuse, logout."""

from __future__ import annotations

from datetime import timedelta

import httpx
import jwt
import pytest
from allauth.account.models import EmailAddress
from django.conf import settings
from django.core import mail
from django.utils import timezone

from apps.accounts.models import RefreshToken, TokenFamily, User, UserKey
from conftest import DEFAULT_PASSWORD

pytestmark = pytest.mark.django_db


def _assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code
    assert body["message"]
    assert "Traceback" not in response.content.decode()
    return body


@pytest.mark.django_db(transaction=True)
def test_full_auth_flow_over_real_http(live_server):
    api = f"{live_server.url}/api/v1"
    with httpx.Client(timeout=10) as http:
        # given a new account
        registered = http.post(f"{api}/auth/register", json={"email": "Bob@Example.com", "password": DEFAULT_PASSWORD})
        assert registered.status_code == 201
        assert set(registered.json()) == {"access_token", "refresh_token", "expires_at"}

        # when the client logs in and asks who it is
        login = http.post(f"{api}/auth/login", json={"email": "bob@example.com", "password": DEFAULT_PASSWORD}).json()
        me = http.get(f"{api}/auth/me", headers={"Authorization": f"Bearer {login['access_token']}"})

        # then it is the same, lower-cased account on the free tier
        assert me.status_code == 200
        assert me.json()["email"] == "bob@example.com"
        assert me.json()["tier"] == "free"
        assert me.json()["id"] == str(User.objects.get(email="bob@example.com").id)

        # refresh rotates: a new pair, and the old refresh token is spent
        rotated = http.post(f"{api}/auth/refresh", json={"refresh_token": login["refresh_token"]})
        assert rotated.status_code == 200
        new = rotated.json()
        assert new["refresh_token"] != login["refresh_token"]
        assert http.get(f"{api}/auth/me", headers={"Authorization": f"Bearer {new['access_token']}"}).status_code == 200

        # reusing the spent token is rejected and revokes the whole session
        reuse = http.post(f"{api}/auth/refresh", json={"refresh_token": login["refresh_token"]})
        assert reuse.status_code == 401
        assert reuse.json()["code"] == "refresh_token_reused"
        assert http.post(f"{api}/auth/refresh", json={"refresh_token": new["refresh_token"]}).status_code == 401
        me_after = http.get(f"{api}/auth/me", headers={"Authorization": f"Bearer {new['access_token']}"})
        assert me_after.status_code == 401

        # the registration session is separate and still alive; logout ends it
        first = registered.json()
        headers = {"Authorization": f"Bearer {first['access_token']}"}
        assert http.get(f"{api}/auth/me", headers=headers).status_code == 200
        logout = http.post(f"{api}/auth/logout", json={"refresh_token": first["refresh_token"]}, headers=headers)
        assert logout.status_code == 204
        assert http.get(f"{api}/auth/me", headers=headers).status_code == 401
        refused = http.post(f"{api}/auth/refresh", json={"refresh_token": first["refresh_token"]})
        assert refused.status_code == 401


def test_register_creates_user_key_email_record_and_sends_verification(api_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post("/api/v1/auth/register", {"email": "new@example.com", "password": DEFAULT_PASSWORD})

    assert response.status_code == 201
    user = User.objects.get(email="new@example.com")
    assert UserKey.objects.filter(user=user).exists()
    assert EmailAddress.objects.get(user=user).verified is False
    assert len(mail.outbox) == 1
    assert "new@example.com" in mail.outbox[0].to
    assert TokenFamily.objects.filter(user=user).count() == 1


def test_expires_at_is_the_access_token_expiry(api_client):
    body = api_client.post("/api/v1/auth/register", {"email": "e@example.com", "password": DEFAULT_PASSWORD}).json()

    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert body["expires_at"] == claims["exp"]
    assert claims["exp"] > timezone.now().timestamp()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"password": DEFAULT_PASSWORD}, "email"),
        ({"email": "x@example.com"}, "password"),
        ({"email": "not-an-email", "password": DEFAULT_PASSWORD}, "email"),
        ({"email": ["x@example.com"], "password": DEFAULT_PASSWORD}, "email"),
        ({"email": "x@example.com", "password": 12345678901}, "password"),
        ({"email": "x@example.com" * 30, "password": DEFAULT_PASSWORD}, "email"),
    ],
)
def test_register_rejects_bad_fields_and_creates_nothing(api_client, payload, field):
    response = api_client.post("/api/v1/auth/register", payload, format="json")

    body = _assert_error(response, 400, "validation_error")
    assert field in body["fields"]
    assert User.objects.count() == 0


def test_register_rejects_weak_password_with_reason(api_client):
    response = api_client.post("/api/v1/auth/register", {"email": "w@example.com", "password": "password"})

    body = _assert_error(response, 400, "validation_error")
    assert any("common" in reason for reason in body["fields"]["password"])
    assert not User.objects.filter(email="w@example.com").exists()


def test_register_rejects_duplicate_email_case_insensitively(api_client, user):
    response = api_client.post("/api/v1/auth/register", {"email": "ALICE@example.com", "password": DEFAULT_PASSWORD})

    body = _assert_error(response, 400, "email_taken")
    assert "email" in body["fields"]
    assert User.objects.filter(email__iexact="alice@example.com").count() == 1


def test_malformed_json_is_a_clear_400(api_client):
    response = api_client.generic("POST", "/api/v1/auth/login", "{not json", content_type="application/json")

    _assert_error(response, 400, "malformed_request")


def test_login_wrong_password_and_unknown_user_look_the_same(api_client, user):
    wrong = api_client.post("/api/v1/auth/login", {"email": user.email, "password": "nope-nope-nope"})
    unknown = api_client.post("/api/v1/auth/login", {"email": "ghost@example.com", "password": "nope-nope-nope"})

    assert _assert_error(wrong, 401, "invalid_credentials")["message"] == unknown.json()["message"]


def test_login_of_disabled_account_is_refused(api_client, make_user):
    make_user("off@example.com", is_active=False)

    response = api_client.post("/api/v1/auth/login", {"email": "off@example.com", "password": DEFAULT_PASSWORD})

    _assert_error(response, 401, "account_disabled")


def test_login_attempts_are_throttled_with_retry_after(api_client, user):
    # the test settings allow 5 attempts a minute
    for _ in range(5):
        api_client.post("/api/v1/auth/login", {"email": user.email, "password": "wrong-password-x"})

    response = api_client.post("/api/v1/auth/login", {"email": user.email, "password": DEFAULT_PASSWORD})

    _assert_error(response, 429, "rate_limited")
    assert int(response["Retry-After"]) >= 1


def test_me_requires_a_token(api_client):
    _assert_error(api_client.get("/api/v1/auth/me"), 401, "not_authenticated")


def test_forged_token_is_rejected(api_client, user):
    claims = {"user_id": str(user.id), "token_type": "access", "exp": 9999999999}
    forged = jwt.encode(claims, "not-the-signing-key-but-long-enough-for-hs256")
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {forged}")

    _assert_error(api_client.get("/api/v1/auth/me"), 401, "token_invalid")


def test_expired_token_is_rejected(api_client, user, tokens):
    claims = jwt.decode(tokens.access_token, options={"verify_signature": False})
    claims["exp"] = int((timezone.now() - timedelta(minutes=1)).timestamp())
    expired = jwt.encode(claims, settings.SIMPLE_JWT["SIGNING_KEY"], algorithm="HS256")
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {expired}")

    _assert_error(api_client.get("/api/v1/auth/me"), 401, "token_invalid")


def test_a_token_checked_before_is_refused_once_it_expires(auth_client, monkeypatch):
    # given a token that was accepted (and so remembered as checked)
    assert auth_client.get("/api/v1/auth/me").status_code == 200

    # when its 15 minutes have passed
    later = timezone.now() + timedelta(minutes=16)
    monkeypatch.setattr("rest_framework_simplejwt.tokens.aware_utcnow", lambda: later)
    monkeypatch.setattr("apps.accounts.authentication.aware_utcnow", lambda: later)

    # then it is refused as expired
    _assert_error(auth_client.get("/api/v1/auth/me"), 401, "token_invalid")


def test_a_token_checked_before_stops_working_when_its_session_is_revoked(auth_client, user):
    assert auth_client.get("/api/v1/auth/me").status_code == 200

    TokenFamily.objects.filter(user=user).update(revoked_at=timezone.now())

    _assert_error(auth_client.get("/api/v1/auth/me"), 401, "authentication_failed")


def test_token_of_deactivated_user_stops_working(auth_client, user):
    user.is_active = False
    user.save()

    _assert_error(auth_client.get("/api/v1/auth/me"), 401, "authentication_failed")


def test_expired_refresh_token_is_rejected(api_client, tokens):
    RefreshToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    response = api_client.post("/api/v1/auth/refresh", {"refresh_token": tokens.refresh_token})

    _assert_error(response, 401, "refresh_token_expired")


def test_refresh_token_of_another_user_is_refused_and_nothing_revoked(api_client, make_user, tokens):
    # given Mallory's bearer and Alice's refresh token
    from apps.accounts.tokens import tokens_issue

    mallory = tokens_issue(user=make_user("mallory@example.com"))
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {mallory.access_token}")

    refresh = api_client.post("/api/v1/auth/refresh", {"refresh_token": tokens.refresh_token})
    logout = api_client.post("/api/v1/auth/logout", {"refresh_token": tokens.refresh_token})

    _assert_error(refresh, 401, "refresh_token_invalid")
    _assert_error(logout, 401, "refresh_token_invalid")
    assert TokenFamily.objects.filter(revoked_at__isnull=False).count() == 0
    assert RefreshToken.objects.filter(used_at__isnull=False).count() == 0


def test_unknown_refresh_token_is_refused(api_client, db):
    _assert_error(api_client.post("/api/v1/auth/refresh", {"refresh_token": "garbage"}), 401, "refresh_token_invalid")


def test_logout_without_body_revokes_the_bearer_session(auth_client):
    assert auth_client.post("/api/v1/auth/logout", {}, format="json").status_code == 204

    _assert_error(auth_client.get("/api/v1/auth/me"), 401, "authentication_failed")


def test_tier_cannot_be_set_by_the_client(api_client):
    api_client.post(
        "/api/v1/auth/register", {"email": "t@example.com", "password": DEFAULT_PASSWORD, "tier": "team"}, format="json"
    )

    assert User.objects.get(email="t@example.com").tier == "free"


@pytest.mark.parametrize(
    ("address", "verified", "expected"),
    [
        (None, False, False),
        ("ALICE@example.com", True, True),  # the address matches whatever its case
        ("alice@example.com", False, False),
        ("other@example.com", True, False),  # another verified address is not this one
    ],
)
def test_me_reads_the_session_its_user_and_the_address_in_one_query(
    auth_client, user, django_assert_num_queries, address, verified, expected
):
    if address:
        EmailAddress.objects.create(user=user, email=address, verified=verified)

    # every field auth/me answers comes with the session check (no deferred field loaded later, and
    # the address's verification read in the same query)
    with django_assert_num_queries(1):
        response = auth_client.get("/api/v1/auth/me")

    assert response.status_code == 200
    assert response.json() == {
        "id": str(user.id),
        "email": user.email,
        "tier": user.tier,
        "email_verified": expected,
        "time_zone": user.time_zone,
    }
