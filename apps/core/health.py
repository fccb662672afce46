"""Readiness probes of the services the backend needs (database, Redis, blob storage)."""

from __future__ import annotations

import logging

from django.core.cache import cache
from django.core.files.storage import storages
from django.db import connection

from .redis_outage import is_redis_unavailable, redis_outage_noted

logger = logging.getLogger(__name__)


def database_status() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception:  # a probe reports, it never raises
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
