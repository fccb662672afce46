"""Readiness probes of the services the backend needs (database, Redis, blob storage)."""

from __future__ import annotations

import logging

from django.core.cache import cache
from django.core.files.storage import storages
from django.db import connection

from .database_outage import database_outage_noted, is_database_unavailable
from .redis_outage import is_redis_unavailable, redis_outage_noted

logger = logging.getLogger(__name__)


# Well under any probe's timeout: a request waits for the pool up to DATABASE_POOL_TIMEOUT, a probe not.
DATABASE_PROBE_TIMEOUT_SECONDS = 2.0


def database_status() -> str:
    try:
        pool = getattr(connection, "pool", None)  # psycopg 3 pool (Django 5.1+); None without one
        if pool is None:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        else:
            # Django opens its pool on the first connection it makes: a fresh process's first request may
            # be this probe (a readiness check before any traffic), so open it here too (idempotent).
            pool.open()
            with pool.connection(timeout=DATABASE_PROBE_TIMEOUT_SECONDS) as conn:
                conn.execute("SELECT 1")
        return "ok"
    except Exception as exc:  # a probe reports, it never raises
        if is_database_unavailable(exc):
            database_outage_noted(where="health", exc=exc)
        else:
            logger.warning("health: database unreachable", exc_info=True)
        return "unavailable"


def redis_status() -> str:
    try:
        cache.set("health:ping", "1", timeout=5)
        return "ok" if cache.get("health:ping") == "1" else "unavailable"
    except Exception as exc:
        if is_redis_unavailable(exc):  # an outage: counted and logged once in a while, no traceback
            redis_outage_noted(where="health", exc=exc)
        else:
            logger.warning("health: redis unreachable", exc_info=True)
        return "unavailable"


def storage_status() -> str:
    """The blob store (S3 or the filesystem) answers a lookup."""
    try:
        storages["blobs"].exists("health/probe")
        return "ok"
    except Exception:
        logger.warning("health: blob storage unreachable", exc_info=True)
        return "unavailable"


def service_checks() -> dict[str, str]:
    return {"database": database_status(), "redis": redis_status(), "storage": storage_status()}
