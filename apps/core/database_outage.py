"""What a PostgreSQL outage looks like to the app, and how it is reported (once in a while, not per request).

Policy (README: "When PostgreSQL is down"): a request that needs the database while it is gone answers
503 ``database_unavailable`` with ``Retry-After``, never a 500; ``/health`` says ``unavailable`` within
its own short timeout; Celery Beat skips the tick and tries again. Nothing needs restarting: the
connection pool reconnects once the server is back (under ``make run`` the supervisor restarts it).
"""

from __future__ import annotations

import logging
import threading
import time

import psycopg
import psycopg_pool
from django.db import utils as db_utils

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
# SQLSTATE class 08 (connection exception), and the server shutting down or starting up.
_UNAVAILABLE_SQLSTATES = ("57P01", "57P02", "57P03")
_REPORT_EVERY_SECONDS = 30.0
_last_report: dict[str, float] = {}
_lock = threading.Lock()


def is_database_unavailable(exc: BaseException) -> bool:
    """True for connection-level failures only; a failing *statement* (a constraint, a timeout) is a bug to see."""
    if isinstance(exc, db_utils.InterfaceError):  # "connection already closed"
        return True
    if not isinstance(exc, db_utils.OperationalError | psycopg.OperationalError):
        return False
    cause = exc if isinstance(exc, psycopg.Error) else exc.__cause__
    if isinstance(cause, psycopg_pool.PoolTimeout):
        return True
    if not isinstance(cause, psycopg.Error):
        return False
    # libpq reports a refused or lost connection without a SQLSTATE.
    sqlstate = cause.sqlstate
    return sqlstate is None or sqlstate.startswith("08") or sqlstate in _UNAVAILABLE_SQLSTATES


def database_outage_noted(*, where: str, exc: BaseException) -> None:
    """Log one warning (no traceback) per place and process every 30 s."""
    now = time.monotonic()
    with _lock:
        if now - _last_report.get(where, -_REPORT_EVERY_SECONDS) < _REPORT_EVERY_SECONDS:
            return
        _last_report[where] = now
    logger.warning("database unavailable (%s): %s: %s", where, type(exc).__name__, exc)
