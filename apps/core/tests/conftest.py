"""Fixtures of the loop's reads (apps.core.loop_db): the server's loop played by the test's."""

from __future__ import annotations

import psycopg
import pytest
from django.db import connection

from apps.core import loop_db
from apps.core.loop_redis import loop_redis_close


@pytest.fixture
async def on_the_loop():
    """As under the server: this test's reads are the loop pool's."""
    with loop_db.loop_reads():
        yield
    await loop_db.loop_pools_close()
    await loop_redis_close()


@pytest.fixture
def statements_sent(monkeypatch) -> list[str]:
    """Every statement text a loop cursor sends for reads, in order: not the time zone a connection
    the pool opens in the background is given (on a loaded box one opened during a test's batch)."""
    sent: list[str] = []
    real_execute = psycopg.AsyncCursor.execute
    set_up = connection.ops.set_time_zone_sql()

    async def execute(self, query, params=None, **kwargs):
        if str(query) != set_up:
            sent.append(str(query))
        return await real_execute(self, query, params, **kwargs)

    monkeypatch.setattr(psycopg.AsyncCursor, "execute", execute)
    return sent
