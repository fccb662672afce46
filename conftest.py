"""Shared fixtures: API clients, users, tokens, a blob directory per test; each test starts with an
empty cache and a fresh throttle window."""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from allauth.account.models import EmailAddress
from django.core.cache import cache
from pytest_django.fixtures import validate_django_db
from pytest_django.plugin import blocking_manager_key
from rest_framework.test import APIClient

from apps.accounts.models import User
from apps.accounts.tokens import TokenPair, tokens_issue
from apps.billing import throttles
from apps.billing.throttles import WINDOW_SECONDS
from apps.core.testing.seed_data import SeedData

DEFAULT_PASSWORD = "correct-horse-battery-staple-42"


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _throttle_window_fresh(monkeypatch):
    """The tier throttle's clock starts a second into a one-minute window and runs in real time, so a
    test's requests never straddle two windows (a budget of 120 counted in a window that rolls over
    mid-test would start again at 0)."""
    real = time.time()
    offset = (real // WINDOW_SECONDS + 1) * WINDOW_SECONDS + 1 - real
    monkeypatch.setattr(throttles, "time", SimpleNamespace(time=lambda: time.time() + offset))


@pytest.fixture
async def loop_asgi_app():
    """The project's ASGI handler for requests made in this test's loop (``asgi_request``), whose
    hot reads run on that loop's own pools; the pools are closed with the loop."""
    from apps.core import loop_db
    from apps.core.loop_redis import loop_redis_close
    from apps.core.request_threads import PooledASGIHandler

    yield PooledASGIHandler()
    await loop_db.loop_pools_close()
    await loop_redis_close()


@pytest.fixture
def celery_eager():
    """Tasks queued with ``.delay`` run in place (the real task code, no worker process)."""
    from adiuva.celery import app

    # Tasks are queued by name, which runs eagerly only once the task is registered: import the apps'
    # task modules as a worker does (alone, a test would otherwise send to a broker nobody reads).
    app.loader.import_default_modules()
    app.conf.task_always_eager = True
    yield app
    app.conf.task_always_eager = False


@pytest.fixture
def blob_dir(settings, tmp_path) -> Path:
    """Blobs of this test go to a directory of its own, so 'nothing stored' is checkable by listing it."""
    location = tmp_path / "blobs"
    settings.STORAGES = {
        **settings.STORAGES,
        "blobs": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(location)}},
    }
    return location


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def make_user(db):
    counter = {"n": 0}

    def make(
        email: str | None = None, password: str = DEFAULT_PASSWORD, *, email_verified: bool = False, **extra
    ) -> User:
        counter["n"] += 1
        user = User.objects.create_user(email=email or f"user{counter['n']}@example.com", password=password, **extra)
        if email_verified:
            EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=True)
        return user

    return make


@pytest.fixture
def user(make_user) -> User:
    return make_user("alice@example.com")


@pytest.fixture
def tokens(user) -> TokenPair:
    return tokens_issue(user=user)


@pytest.fixture
def auth_client(tokens) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens.access_token}")
    return client


@pytest.fixture(scope="session")
def django_db_setup(request, django_db_setup, django_db_blocker):
    """pytest-django's test database, whose other sessions are ended before it is dropped: the
    threads of async tests (asgiref's sync thread, the request threads) keep their own Django
    connections to it, and the drop failed after a wait ("being accessed by other users"). The rows
    its migrations seeded are captured first (``SeedData``), to be put back after every flush."""
    with django_db_blocker.unblock():
        request.config.stash[_SEED_DATA] = SeedData.capture()
    yield
    from django.db import connection

    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


_SEED_DATA = pytest.StashKey[SeedData]()
# What makes pytest-django end a test with a flush (a transactional test).
_FLUSHING_FIXTURES = {"transactional_db", "live_server", "django_db_reset_sequences", "django_db_serialized_rollback"}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None):
    """After a transactional test's flush (its fixtures' teardown), the seeded rows it took are put
    back, so that no test depends on which test ran before it (see apps.core.testing.seed_data)."""
    result = yield
    seed = item.config.stash.get(_SEED_DATA, None)
    marker = item.get_closest_marker("django_db")
    transaction = marker is not None and validate_django_db(marker)[0]  # (transaction, reset_sequences, …)
    flushed = transaction or bool(_FLUSHING_FIXTURES & set(getattr(item, "fixturenames", ())))
    # The last test's teardown also ends the session's fixtures, the test database's among them: the
    # connection points at the main database by then, and no later test needs the rows.
    if seed is not None and flushed and nextitem is not None:
        with item.config.stash[blocking_manager_key].unblock():
            seed.restore()
    return result


@pytest.fixture(scope="session")
def live_asgi_server(django_db_setup, django_db_blocker):
    """The real ASGI app under uvicorn on loopback (static files, admin, API, sockets);
    tests using it need committed rows: ``django_db(transaction=True)``."""
    from apps.core.testing.asgi_server import AsgiServerThread

    server = AsgiServerThread(name="live-asgi-server")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session (Debian's chromium + chromedriver). Missing locally:
    the test is skipped with the install command; missing on CI: it fails."""
    from apps.core.testing.browser import browser_missing, chrome_driver

    missing = browser_missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    driver = chrome_driver()
    yield driver
    driver.quit()
