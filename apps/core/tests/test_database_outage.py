"""A PostgreSQL outage: 503 ``database_unavailable`` with Retry-After (never a 500), a /health that
answers, and a Celery Beat that keeps ticking; then recovery.

The outage is real: the test database stops accepting connections (``ALLOW_CONNECTIONS false``) and
every backend connected to it is terminated, as when the server is killed; then it is let back in.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Iterator

import psycopg
import pytest
from asgiref.sync import SyncToAsync
from django.db import InterfaceError, OperationalError, connection, connections
from psycopg import sql
from rest_framework.test import APIClient

from apps.accounts.models import User
from apps.accounts.tokens import tokens_issue
from conftest import DEFAULT_PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


@contextlib.contextmanager
def database_outage() -> Iterator[None]:
    params = connection.settings_dict
    name = params["NAME"]
    with psycopg.connect(
        host=params["HOST"], port=params["PORT"] or None, user=params["USER"], dbname="postgres", autocommit=True
    ) as admin:
        admin.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(sql.Identifier(name)))
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [name],
        )
        try:
            yield
        finally:
            admin.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(sql.Identifier(name)))
            connection.close()
            # A new pool, not only a check of the idle connections: a connection another thread held
            # through the outage looks sound until it is used, and returned to the old pool it would
            # fail a later test's request with "terminating connection due to administrator
            # command" (seen in the Redis-outage test and a device auth test). Returned to a closed
            # pool, it is closed.
            connection.close_pool()  # type: ignore[attr-defined]  # the PostgreSQL backend's (not in the stubs)
            # asgiref's one thread for sync_to_async keeps its connection across tests: terminated
            # by the outage, it failed the next async test of this process to write through it.
            SyncToAsync.single_thread_executor.submit(connections.close_all).result()


@pytest.fixture
def signed_in(make_user) -> APIClient:
    user = make_user("outage@example.com", tier="power")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens_issue(user=user).access_token}")
    return client


@pytest.fixture
def short_pool_wait(settings):
    """Requests wait for a pooled connection up to DATABASE_POOL_TIMEOUT; keep the test's waits short."""
    pool = connection.pool
    assert pool is not None
    previous, pool.timeout = pool.timeout, 1.0
    yield
    pool.timeout = previous


def test_requests_during_a_database_outage_are_503_with_retry_after_never_500(signed_in, short_pool_wait):
    # given a signed-in user (the token is checked against the database on every request)
    assert signed_in.get("/api/v1/agents/runs").status_code == 200

    # when the database goes away
    with database_outage():
        answers = {
            "runs": signed_in.get("/api/v1/agents/runs"),
            "plugins": signed_in.get("/api/v1/plugins"),
            "memory": signed_in.get("/api/v1/memory/core"),
            "login": APIClient().post(
                "/api/v1/auth/login", {"email": "outage@example.com", "password": DEFAULT_PASSWORD}, format="json"
            ),
        }
        health = APIClient().get("/api/v1/health")

    # then every request is a 503 the client can retry, and /health reports the database
    for name, response in answers.items():
        assert response.status_code == 503, (name, response.status_code, response.content[:300])
        assert response.json()["code"] == "database_unavailable", name
        assert response["Retry-After"] == "5", name
    assert health.status_code == 503
    assert health.json()["checks"]["database"] == "unavailable"

    # and once it is back, the same requests succeed without a restart
    assert signed_in.get("/api/v1/agents/runs").status_code == 200
    assert APIClient().get("/api/v1/health").json()["checks"]["database"] == "ok"


def test_celery_beat_keeps_ticking_through_a_database_outage(short_pool_wait):
    # given both schedulers set up while the database is there, each due for its five-minute full re-read
    from django_celery_beat.schedulers import DatabaseScheduler

    from adiuva.celery import app
    from apps.core.beat_scheduler import OutageTolerantDatabaseScheduler
    from apps.core.database_outage import RETRY_AFTER_SECONDS

    stock, tolerant = DatabaseScheduler(app=app), OutageTolerantDatabaseScheduler(app=app)
    for scheduler in (stock, tolerant):
        scheduler._last_full_sync = dt.datetime.now() - dt.timedelta(minutes=10)

    # when Beat ticks while the database is gone
    with database_outage():
        with pytest.raises((OperationalError, InterfaceError)) as stock_failure:
            stock.tick()
        interval = tolerant.tick()

    # then the stock scheduler's error (which made Beat exit) is a connection error, and ours waits and retries
    from apps.core.database_outage import is_database_unavailable

    assert is_database_unavailable(stock_failure.value)
    assert interval == RETRY_AFTER_SECONDS


def test_outside_drf_the_500_handler_answers_503_for_a_lost_database(rf):
    # given a view outside DRF that lost its connection (how Django wraps psycopg's error)
    from django.db import OperationalError as DjangoOperationalError

    from apps.core.views import server_error

    request = rf.get("/api/v1/anything")
    try:
        try:
            raise psycopg.OperationalError("connection to server on socket failed: Connection refused")
        except psycopg.OperationalError as cause:
            raise DjangoOperationalError(str(cause)) from cause
    except DjangoOperationalError:
        # when Django calls handler500 inside the failed request's except block
        response = server_error(request)

    # then
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert json.loads(response.content)["code"] == "database_unavailable"


def test_a_failing_statement_is_not_taken_for_an_outage():
    from apps.core.database_outage import is_database_unavailable

    wrapped = OperationalError("canceling statement due to statement timeout")
    wrapped.__cause__ = psycopg.errors.QueryCanceled("canceling statement due to statement timeout")

    assert not is_database_unavailable(wrapped)


def test_the_first_health_probe_of_a_fresh_process_finds_the_database(api_client):
    # given a process whose database pool has not been opened yet (a web process that has served
    # nothing: its first request is the orchestrator's readiness probe)
    connection.close()
    connection.close_pool()
    assert connection.pool.closed

    # then the probe opens the pool and reports the database up
    response = api_client.get("/api/v1/health")
    assert response.json()["checks"]["database"] == "ok"
    assert response.status_code == 200


def test_after_an_outage_the_thread_of_sync_to_async_writes_again(make_user):
    # given asgiref's one thread for sync_to_async (where async code's ORM calls run) holding a
    # connection, as after an earlier async test wrote through it
    sync_thread = SyncToAsync.single_thread_executor
    sync_thread.submit(make_user, "before-outage@example.com").result()

    # when the database goes away and comes back
    with database_outage():
        pass

    # then a write in that thread gets a live connection, not the terminated one
    user = sync_thread.submit(make_user, "after-outage@example.com").result()
    assert User.objects.filter(email=user.email).exists()
