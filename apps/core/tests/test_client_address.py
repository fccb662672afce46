"""Forwarded headers are believed only from configured proxies: throttles and the access log agree."""

from __future__ import annotations

import logging

import pytest

from conftest import DEFAULT_PASSWORD

pytestmark = pytest.mark.django_db

LOGIN = "/api/v1/auth/login"


def _login(client, forwarded_for: str, email: str = "nobody@example.com"):
    return client.post(
        LOGIN, {"email": email, "password": DEFAULT_PASSWORD}, format="json", HTTP_X_FORWARDED_FOR=forwarded_for
    )


def test_spoofed_forwarded_for_does_not_buy_new_login_buckets(api_client):
    # given no trusted proxy (the default) and a login rate of 5/min per address
    # when one client sends 6 attempts, each claiming another address, for 6 different accounts
    statuses = [_login(api_client, f"203.0.113.{n}", email=f"user{n}@example.com").status_code for n in range(6)]

    # then they all count against its real address: the 6th is throttled
    assert statuses[:5] == [401] * 5
    assert statuses[5] == 429


def test_with_one_trusted_proxy_the_address_it_saw_is_the_client(api_client, settings):
    # given one proxy in front that appends the peer it saw to X-Forwarded-For
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}

    # when one attacker (198.51.100.7) spoofs a different left-hand entry on every attempt
    spoofed = [_login(api_client, f"10.0.0.{n}, 198.51.100.7", email=f"a{n}@example.com") for n in range(6)]
    # and another client behind the same proxy logs in
    other = _login(api_client, "198.51.100.8", email="b@example.com")

    # then the attacker shares one bucket and the other client has its own
    assert [r.status_code for r in spoofed][5] == 429
    assert other.status_code == 401


def test_access_log_line_names_the_real_client_address(api_client, caplog):
    with caplog.at_level(logging.INFO, logger="adiuva.access"):
        api_client.get("/api/v1/health", HTTP_X_FORWARDED_FOR="203.0.113.99", REMOTE_ADDR="192.0.2.10")

    record = next(r for r in caplog.records if r.name == "adiuva.access")
    assert record.client_ip == "192.0.2.10"
    assert record.status == 200
    assert record.route == "/api/v1/health"
