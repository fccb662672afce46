"""Timing a compiled list query's pages: PostgreSQL's own execution time and the call's wall time."""

from __future__ import annotations

import statistics
import time
from typing import Any


def page_execution_ms(query: Any, values: dict[str, Any], *, limit: int, offset: int) -> float:
    """PostgreSQL's own execution time of the page ``limit``/``offset`` of a ``CompiledQuery``'s
    rows (EXPLAIN ANALYZE), median of 5: steadier than the round trip on a shared box."""
    from django.db import connection

    compiled = query._rows or query._compile("rows")
    times = []
    for _ in range(5):
        with connection.cursor() as cursor:
            cursor.execute(
                "EXPLAIN (ANALYZE, FORMAT JSON) " + compiled.sql,
                [*query._bound(compiled, values, connection), limit, offset],
            )
            times.append(cursor.fetchone()[0][0]["Execution Time"])
    return statistics.median(times)


def median_ms(call: Any) -> float:
    """The median wall time of 30 calls of ``call`` after 5 to warm up, in ms."""
    for _ in range(5):
        call()
    times = []
    for _ in range(30):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000
