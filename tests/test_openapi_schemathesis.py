"""The OpenAPI schema tells the truth: schemathesis calls every operation, signed in as a registered user.

Every operation of ``/api/v1/schema`` is exercised in-process through the project's WSGI application
(the same Django views and middleware as under uvicorn), with schema-valid and schema-invalid inputs.
Each response must: not be a server error, have a status the schema declares for that operation, and
match the declared body schema and content type. Nothing is excluded.

One allowance, on purpose: a declared 503 carrying the error shape is the API saying "this service is
not configured here" (no LLM for chat/embeddings, Stripe plans not synced for checkout), which is what
this suite's environment is; any other 5xx, and any 503 without a stable code, still fails.

Examples per operation are bounded (``MAX_EXAMPLES``) and derandomized so the run is fast and repeatable.
"""

from __future__ import annotations

import pytest
import schemathesis
import stripe
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from apps.accounts.tokens import tokens_issue
from apps.marketplace.tests.fake_connect import FakeConnectStripe

MAX_EXAMPLES = 8


def not_a_server_error_except_declared_unavailable(ctx, response, case):
    """schemathesis' ``not_a_server_error``, letting through a 503 with a stable error code."""
    if response.status_code == 503:
        body = response.json()
        assert isinstance(body, dict), "a 503 must carry the error shape"
        assert body.get("code"), "a 503 must carry a stable error code"
        return None
    return not_a_server_error(ctx, response, case)


CHECKS = [
    not_a_server_error_except_declared_unavailable,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

# Plugin packages are zip bodies: send them as raw bytes like any binary body.
schemathesis.serializer.alias("application/zip", "application/octet-stream")

schema = schemathesis.openapi.from_wsgi("/api/v1/schema?format=json", get_wsgi_application())


@pytest.fixture(autouse=True)
def _keep_the_test_transaction():
    """A bare WSGI handler closes the database connection around each request (Django's test client
    switches that off): keep it, so requests run inside the test's transaction."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture(autouse=True)
def _stripe_on_loopback(monkeypatch):
    """Views that call Stripe (Connect onboarding, checkout) talk to the loopback fake, never the internet."""
    server = FakeConnectStripe().start()
    monkeypatch.setattr(stripe, "api_base", server.url)
    monkeypatch.setattr(stripe, "max_network_retries", 0)
    yield
    server.stop()


@pytest.fixture
def bearer(make_user, settings) -> dict[str, str]:
    # a registered user on a paid tier, so tier gates let the calls reach the views' own validation
    settings.BILLING_RATE_LIMIT_SCALE = 1000
    user = make_user("schemathesis@example.com", tier="power")
    return {"Authorization": f"Bearer {tokens_issue(user=user).access_token}"}


@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_its_schema_says(case, bearer):
    case.call_and_validate(headers=bearer, checks=CHECKS)
