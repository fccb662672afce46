"""Celery Beat's scheduler: django-celery-beat's ``DatabaseScheduler`` that outlives a database outage.

The stock scheduler lets a connection error escape ``tick`` (its forced full re-read every five
minutes has no error handling), and Beat exits; under ``make run`` honcho then stops web and worker
too. Here a tick that cannot reach the database is skipped and retried a few seconds later.
"""

from __future__ import annotations

from typing import Any

from django.db import close_old_connections, connection
from django_celery_beat.schedulers import DatabaseScheduler

from .database_outage import RETRY_AFTER_SECONDS, database_outage_noted, is_database_unavailable


class OutageTolerantDatabaseScheduler(DatabaseScheduler):
    def tick(self, *args: Any, **kwargs: Any) -> float:
        try:
            return super().tick(*args, **kwargs)
        except Exception as exc:
            if not is_database_unavailable(exc):
                raise
            database_outage_noted(where="beat", exc=exc)
            # The broken connection goes back to the pool (which drops it); the next tick takes a new one.
            connection.close()
            close_old_connections()
            return float(RETRY_AFTER_SECONDS)
