"""Connector fixtures: the loopback fake providers, settings pointing at it, a helper that connects
a provider through the real authorize → consent → callback flow."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from rest_framework.test import APIClient

from apps.accounts.testing import client_for
from apps.connectors.models import OAuthGrant

from .fake_providers import FakeProviders


@pytest.fixture
def fake() -> Iterator[FakeProviders]:
    server = FakeProviders().start()
    yield server
    server.stop()
    assert server.unknown == [], f"unexpected provider calls: {server.unknown}"


@pytest.fixture(autouse=True)
def provider_settings(settings, fake):
    settings.GOOGLE_OAUTH_CLIENT_ID = "google-client-id"
    settings.GOOGLE_OAUTH_CLIENT_SECRET = "google-client-secret"
    settings.MICROSOFT_OAUTH_CLIENT_ID = "microsoft-client-id"
    settings.MICROSOFT_OAUTH_CLIENT_SECRET = "microsoft-client-secret"
    settings.MICROSOFT_OAUTH_TENANT = "common"
    settings.OAUTH_REDIRECT_BASE_URL = "https://api.example.test"
    settings.GOOGLE_OAUTH_AUTHORIZE_URL = f"{fake.url}/google/authorize"
    settings.GOOGLE_OAUTH_TOKEN_URL = f"{fake.url}/google/token"
    settings.GOOGLE_OAUTH_REVOKE_URL = f"{fake.url}/google/revoke"
    settings.GMAIL_API_BASE_URL = f"{fake.url}/"
    settings.MICROSOFT_OAUTH_AUTHORITY_URL = f"{fake.url}/ms"
    settings.MICROSOFT_GRAPH_BASE_URL = f"{fake.url}/graph/v1.0"
    settings.CONNECTORS_HTTP_BACKOFF_SECONDS = 0.01
    settings.CONNECTORS_RETRY_AFTER_MAX_SECONDS = 5.0
    settings.CONNECTORS_HTTP_TIMEOUT = 10.0
    return settings


def query_of(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


Connect = Callable[..., OAuthGrant]


@pytest.fixture
def connect(fake) -> Connect:
    """Connect ``provider`` for ``user`` the way a browser would: authorize, consent, callback."""

    def run(user, provider: str = "gmail") -> OAuthGrant:
        client = client_for(user)
        url = client.get(f"/api/v1/oauth/{provider}/authorize").json()["authorization_url"]
        params = query_of(url)
        family = "google" if provider == "gmail" else "microsoft"
        code = fake.issue_code(code_challenge=params["code_challenge"], family=family)
        response = APIClient().get(f"/api/v1/oauth/{provider}/callback", {"code": code, "state": params["state"]})
        assert response.status_code == 200, response.json()
        return OAuthGrant.objects.get(id=response.json()["grant_id"])

    return run
