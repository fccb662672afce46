"""A throwaway database on the same PostgreSQL server for benchmarks that bulk-load their own data."""

from __future__ import annotations

import os
from urllib.parse import quote, unquote


def server_url(dbname: str) -> str:
    """DATABASE_URL (or the embedded server's) with its database name replaced."""
    from adiuva import embedded

    base = os.environ.get("DATABASE_URL") or embedded.start_postgres(keep_running=True)
    return base.rsplit("/", 1)[0] + "/" + quote(dbname)


def admin_connect():
    import psycopg

    # postgres://USER@HOST/DB with HOST a URL-quoted socket directory (or a host name)
    netloc = server_url("postgres").split("://", 1)[1].rsplit("/", 1)[0]
    user, _, host = netloc.rpartition("@")
    return psycopg.connect(host=unquote(host), user=unquote(user) or "postgres", dbname="postgres", autocommit=True)


def database_create(name: str) -> None:
    """A fresh, empty database ``name`` (an old one is dropped first)."""
    with admin_connect() as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")


def database_drop(name: str) -> None:
    """Close Django's connections (when Django is set up) and drop ``name``."""
    from django.db import connections

    connections.close_all()
    with admin_connect() as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
