"""Browser logins (the admin's form and allauth's page) are throttled per address and per account:
once the failures are spent, even the right password is refused for a while, with a clear message."""

from __future__ import annotations

import pytest
from django.test import Client

from conftest import DEFAULT_PASSWORD

pytestmark = pytest.mark.django_db

ADMIN_LOGIN = "/admin/login/?next=/admin/"
ACCOUNT_LOGIN = "/accounts/login/"
TOO_MANY = "Too many failed login attempts"


def _admin_login(client: Client, email: str, password: str):
    return client.post(ADMIN_LOGIN, {"username": email, "password": password})


def _logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


@pytest.fixture
def staff(make_user):
    return make_user("staff@example.com", is_staff=True, is_superuser=True)


def test_the_admin_refuses_the_right_password_after_five_failures_for_the_account(client, staff):
    # given five wrong passwords for the staff account (the default per-account allowance)
    for attempt in range(5):
        response = _admin_login(client, staff.email, f"wrong-{attempt}")
        assert response.status_code == 200
        assert TOO_MANY not in response.content.decode()

    # when the right password comes next
    response = _admin_login(client, staff.email, DEFAULT_PASSWORD)

    # then it is refused on the form with a clear message (no 500, no session)
    assert response.status_code == 200
    assert TOO_MANY in response.content.decode()
    assert not _logged_in(client)


def test_the_right_password_alone_still_logs_in(client, staff):
    # given fewer failures than the allowance
    for attempt in range(3):
        _admin_login(client, staff.email, f"wrong-{attempt}")

    # when
    response = _admin_login(client, staff.email, DEFAULT_PASSWORD)

    # then
    assert response.status_code == 302
    assert _logged_in(client)


def test_one_address_trying_many_accounts_is_stopped(client, make_user, staff):
    # given ten failures from one address, each against a different account
    for n in range(10):
        _admin_login(client, f"guess{n}@example.com", "wrong")

    # when that address tries a real account with its right password
    response = _admin_login(client, staff.email, DEFAULT_PASSWORD)

    # then it waits too
    assert TOO_MANY in response.content.decode()
    assert not _logged_in(client)


def test_failures_on_allauths_page_and_the_admin_count_together(client, staff):
    # given failures spread over both login pages
    for attempt in range(3):
        _admin_login(client, staff.email, f"wrong-{attempt}")
    for attempt in range(2):
        response = client.post(ACCOUNT_LOGIN, {"login": staff.email, "password": f"wrong-again-{attempt}"})
        assert response.status_code == 200

    # when the right password is tried on allauth's page
    response = client.post(ACCOUNT_LOGIN, {"login": staff.email, "password": DEFAULT_PASSWORD})

    # then allauth refuses it as well
    assert response.status_code == 200
    assert TOO_MANY in response.content.decode()
    assert not _logged_in(client)
