"""Under `make run` a killed embedded Redis or PostgreSQL is restarted by the supervisor (each test in a
private data directory, never the shared one)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
from pathlib import Path

import pytest

from adiuva import embedded

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = textwrap.dedent(
    """
    import os, signal, threading, time
    from adiuva import embedded

    embedded.start_redis()
    os.environ[embedded.EMBEDDED_SERVICES_VAR] = "redis"
    stop = threading.Event()
    threading.Thread(target=embedded.supervise_embedded_services, kwargs={"stop": stop, "interval": 0.2}).start()
    try:
        pid = int((embedded._redis_dir() / "redis.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 15
        while True:
            assert time.monotonic() < deadline, "redis was not restarted"
            pid_file = embedded._redis_dir() / "redis.pid"
            new_pid = int(pid_file.read_text() or 0) if pid_file.exists() else 0
            if new_pid and new_pid != pid and embedded._redis_ping():
                break
            time.sleep(0.1)
        print("restarted")
    finally:
        stop.set()
        embedded.stop_redis()
    """
)


def test_a_killed_embedded_redis_is_restarted(tmp_path):
    # given an embedded Redis in its own data directory (never the shared one), watched by the supervisor
    env = {**os.environ, "ADIUVA_DATA_DIR": str(tmp_path)}

    # when it is killed with SIGKILL
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )

    # then the supervisor brings it back on the same socket
    assert result.returncode == 0, result.stderr
    assert "restarted" in result.stdout


POSTGRES_SCRIPT = textwrap.dedent(
    """
    import os, signal, threading, time
    from adiuva import embedded

    os.environ["DATABASE_URL"] = url = embedded.start_postgres(keep_running=True)
    os.environ[embedded.EMBEDDED_SERVICES_VAR] = "postgres"
    pid_file = embedded._pg_dir(embedded._binary_major()) / "postmaster.pid"

    def postmaster_pid():
        try:
            return int(pid_file.read_text().split()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return 0

    stop = threading.Event()
    supervisor = threading.Thread(
        target=embedded.supervise_embedded_services, kwargs={"stop": stop, "interval": 0.2}, daemon=True
    )
    supervisor.start()
    pid = postmaster_pid()
    try:
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while True:
            assert time.monotonic() < deadline, "postgres was not restarted"
            new_pid = postmaster_pid()
            if new_pid and new_pid != pid and embedded._postgres_alive(url):
                break
            time.sleep(0.1)
        assert os.environ["DATABASE_URL"] == url, "the URL the other processes hold must stay valid"
        print("restarted")
    finally:
        stop.set()
        supervisor.join(timeout=30)  # let a restart in progress finish before its server is stopped
        new_pid = postmaster_pid()
        if new_pid:
            os.kill(new_pid, signal.SIGTERM)
    """
)


@pytest.fixture
def pg_data_dir():
    """A private data directory the server's own user can reach (as root, pgserver runs PostgreSQL as
    ``pgserver``, and pytest's tmp_path sits under a root-only directory)."""
    path = Path(tempfile.mkdtemp(prefix="adiuva-pg-supervision-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_a_killed_embedded_postgres_is_restarted_on_the_same_url(pg_data_dir):
    # given an embedded PostgreSQL in its own data directory, watched by the supervisor
    tmp_path = pg_data_dir
    env = {**os.environ, "ADIUVA_DATA_DIR": str(tmp_path), "XDG_RUNTIME_DIR": str(tmp_path / "run")}
    env.pop("DATABASE_URL", None)

    # when its postmaster is killed with SIGKILL (output to files: a restarted server inherits the
    # script's descriptors and would hold pipes open)
    with open(tmp_path / "out", "w") as out, open(tmp_path / "err", "w") as err:
        result = subprocess.run(
            [sys.executable, "-c", POSTGRES_SCRIPT], cwd=ROOT, env=env, stdout=out, stderr=err, timeout=180
        )

    # then the supervisor starts it again on the same socket
    assert result.returncode == 0, (tmp_path / "err").read_text()[-3000:]
    assert "restarted" in (tmp_path / "out").read_text()


@pytest.fixture
def hanging_up_redis(monkeypatch):
    """A Unix socket where something accepts each connection and closes it at once, as a Redis being
    killed or shutting down does; yields the list of connections it took."""
    directory = tempfile.mkdtemp(prefix="r", dir="/tmp")  # a Unix socket's path has ~100 bytes
    path = os.path.join(directory, "redis.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    accepted: list[int] = []

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            accepted.append(1)
            connection.close()

    threading.Thread(target=serve, daemon=True).start()
    monkeypatch.setattr(embedded, "_redis_socket", lambda: Path(path))
    yield accepted
    listener.close()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.parametrize("ask", [embedded._redis_ping, embedded.stop_redis], ids=["ping", "shutdown"])
def test_the_embedded_redis_is_asked_once_when_it_hangs_up(hanging_up_redis, ask):
    # redis-py's default client tries a command eleven times, with backoff (~4 s): the supervisor took
    # that long to see a killed Redis (and gave up on one that was starting), and every stop waited
    # that long for the reply a Redis shutting down never sends.
    ask()

    assert len(hanging_up_redis) == 1
