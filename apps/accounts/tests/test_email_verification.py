"""E-mail verification: tokens work for unverified accounts; the resend endpoint mails allauth's
confirmation link (throttled), and following the link verifies the address."""

from __future__ import annotations

import re

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.test import Client

from apps.accounts.selectors import user_email_verified

pytestmark = pytest.mark.django_db

RESEND = "/api/v1/auth/verify-email/resend"
REGISTER = "/api/v1/auth/register"


def _bearer(api_client, access_token: str):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token}")
    return api_client


def test_registration_gives_tokens_to_an_unverified_account(api_client):
    # when
    response = api_client.post(REGISTER, {"email": "new@example.com", "password": "correct-horse-battery-staple-42"})

    # then the client's contract holds: tokens now, verification later
    assert response.status_code == 201
    me = _bearer(api_client, response.json()["access_token"]).get("/api/v1/auth/me").json()
    assert me["email_verified"] is False


def test_resend_mails_a_link_that_verifies_the_address(auth_client, user, django_capture_on_commit_callbacks):
    # given an unverified account (made outside allauth: no e-mail record yet)
    mail.outbox.clear()

    # when it asks for the confirmation mail again (sent once the request's writes are committed)
    with django_capture_on_commit_callbacks(execute=True):
        response = auth_client.post(RESEND)

    # then a mail with allauth's confirmation link went to its address
    assert response.status_code == 202
    assert response.json() == {"email": user.email, "sent": True}
    assert [message.to for message in mail.outbox] == [[user.email]]
    link = re.search(r"http://testserver(/accounts/confirm-email/[^/\s]+/)", mail.outbox[0].body).group(1)
    # and following the link (allauth's page, POST to confirm) verifies it
    Client().post(link)
    assert user_email_verified(user=user)


def test_resend_for_a_verified_address_is_a_clear_400(auth_client, user):
    EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=True)
    mail.outbox.clear()

    response = auth_client.post(RESEND)

    assert response.status_code == 400
    assert response.json()["code"] == "email_already_verified"
    assert mail.outbox == []


def test_resend_is_throttled_per_account(auth_client):
    # given the hourly allowance spent (3 in test settings)
    for _ in range(3):
        assert auth_client.post(RESEND).status_code == 202

    # when one more is asked for
    response = auth_client.post(RESEND)

    # then it is refused with Retry-After, not sent
    assert response.status_code == 429
    assert response.json()["code"] == "rate_limited"
    assert "Retry-After" in response


def test_resend_needs_authentication(api_client):
    assert api_client.post(RESEND).status_code == 401
