"""Shared plumbing of the device benchmarks: settings, a private database, users, server processes.

Benchmarks use the test settings with ADIUVA_TEST_RUN=devbench (private Redis databases) and their
own PostgreSQL database ``adiuva_devbench`` (every app migrated: a device's hello reaches the agents' outbox).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
# The checkout whose code is measured: this one, or another (e.g. a worktree of an older commit)
# named by ADIUVA_BENCH_CODE, so old and new code run side by side under the same harness.
CODE_ROOT = Path(os.environ.get("ADIUVA_BENCH_CODE") or ROOT).resolve()
BENCH_DB = "adiuva_devbench"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "adiuva.settings.test")
os.environ.setdefault("ADIUVA_TEST_RUN", "devbench")
sys.path.insert(0, str(CODE_ROOT))


def setup_django(*, migrate: bool = False) -> None:
    import django
    from django.conf import settings

    django.setup()
    settings.DATABASES["default"]["NAME"] = BENCH_DB
    if migrate:
        _ensure_database()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)


def _ensure_database() -> None:
    import psycopg
    from django.db import connection

    params = connection.get_connection_params()
    params.pop("pool", None)
    params["dbname"] = "postgres"
    with psycopg.connect(**params, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (BENCH_DB,)).fetchone():
            conn.execute(f'CREATE DATABASE "{BENCH_DB}"')


def make_users(n: int, prefix: str = "bench") -> list[tuple[str, str]]:
    """(user_id, access token) for ``n`` users (created if missing); tokens live 12 hours."""
    from datetime import timedelta

    from rest_framework_simplejwt.tokens import AccessToken

    from apps.accounts.models import User
    from apps.accounts.tokens import tokens_issue

    AccessToken.lifetime = timedelta(hours=12)  # long benchmarks outlive the 15-minute default
    out = []
    for i in range(n):
        user, _ = User.objects.get_or_create(email=f"{prefix}{i}@bench.example")
        out.append((str(user.id), tokens_issue(user=user).access_token))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(kind: str, port: int, *, env: dict | None = None, output: IO | None = None) -> subprocess.Popen:
    """Start bench/device_server.py (uvicorn or daphne) and wait until it accepts connections
    (``output``: a file for its stdout and stderr)."""
    return start_server_command(
        [str(ROOT / "bench" / "device_server.py"), kind, str(port)], port, env=env, kind=kind, output=output
    )


def start_server_command(
    argv: list[str],
    port: int,
    *,
    env: dict | None = None,
    kind: str = "server",
    quiet: bool = False,
    output: IO | None = None,
) -> subprocess.Popen:
    """Start ``python argv...`` and wait until it accepts connections on ``port`` (``quiet``: its
    output, e.g. the access log, goes to /dev/null, still written)."""
    env = {**os.environ, **(env or {})}
    proc = subprocess.Popen(
        [sys.executable, *argv],
        cwd=env.get("ADIUVA_BENCH_CODE") or str(CODE_ROOT),
        env=env,
        stdout=subprocess.DEVNULL if quiet else output,
        stderr=subprocess.DEVNULL if quiet else output,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"{kind} exited with {proc.returncode}") from None
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{kind} did not start")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def services_cpu() -> float:
    """CPU seconds so far of the embedded PostgreSQL (the postmaster, its live children and those it
    has reaped) and Redis: the processes whose command line names the data directory."""
    import psutil

    from adiuva import embedded

    marker, total = str(embedded.DATA_DIR), 0.0
    for proc in psutil.process_iter(["cmdline"]):
        if marker not in " ".join(proc.info["cmdline"] or []):
            continue
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
            for child in proc.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    total += sum(child.cpu_times()[:2])
    return total
