"""Browser flows stay allauth's: e-mail confirmation and password reset work for API-made accounts."""

from __future__ import annotations

import re

import pytest
from allauth.account.models import EmailAddress
from django.core import mail

from apps.accounts.models import User
from conftest import DEFAULT_PASSWORD

pytestmark = pytest.mark.django_db


def _link(message) -> str:
    match = re.search(r"https?://[^/\s]+(/accounts/\S+)", message.body)
    assert match, message.body
    return match.group(1)


def test_confirmation_mail_of_api_registration_verifies_the_address(
    api_client, client, django_capture_on_commit_callbacks
):
    # given an account registered by the desktop client
    with django_capture_on_commit_callbacks(execute=True):
        api_client.post("/api/v1/auth/register", {"email": "c@example.com", "password": DEFAULT_PASSWORD})

    # when the user follows the link in the mail
    response = client.post(_link(mail.outbox[0]))

    # then the address is verified and /me says so
    assert response.status_code in (200, 302)
    assert EmailAddress.objects.get(email="c@example.com").verified is True
    login = api_client.post("/api/v1/auth/login", {"email": "c@example.com", "password": DEFAULT_PASSWORD}).json()
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {login['access_token']}")
    assert api_client.get("/api/v1/auth/me").json()["email_verified"] is True


def test_password_reset_through_allauth_changes_the_api_password(client, api_client, user):
    # given a reset requested on allauth's page
    client.post("/accounts/password/reset/", {"email": user.email})
    assert len(mail.outbox) == 1

    # when the user follows the link and sets a new password
    page = client.get(_link(mail.outbox[0]), follow=True)
    new_password = "a-brand-new-passphrase-77"
    done = client.post(page.redirect_chain[-1][0], {"password1": new_password, "password2": new_password})

    # then the API accepts the new password and not the old one
    assert done.status_code == 302
    ok = api_client.post("/api/v1/auth/login", {"email": user.email, "password": new_password})
    old = api_client.post("/api/v1/auth/login", {"email": user.email, "password": DEFAULT_PASSWORD})
    assert ok.status_code == 200
    assert old.status_code == 401
    assert User.objects.get(id=user.id).check_password(new_password)
