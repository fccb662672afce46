"""How the memory list's page query costs with the user's size: ``_MEMORY_PAGES`` (a page read by
the (user, created_at) index, the count a scalar subquery over an index) against the window count it
replaced (every item of the kind read and sorted for each page), for a user with 20 associative
memories and one with 5,000, same run. The page's decryption is not part of it (it is per item).

    .venv/bin/python -m adiuva.embedded run -- .venv/bin/python bench/memory_page_size.py [--rounds 5]

Each round times each (user, page, query) pair back to back (median of 30 calls, after 5 warm-up
calls), with the table analyzed and vacuumed first, as autovacuum keeps it in production.

Figures of 2026-12-06 08:48 (2 cores shared with other engineers' runs, load 2.6-2.9), page of 20,
7 rounds, medians: PostgreSQL's execution time (the call's wall time)
    5,000 memories, first page     window 4.58 ms → 0.54 ms (8.5x; wall 4.80 → 0.66 ms, 7.2x)
    5,000 memories, second page    window 4.57 ms → 0.56 ms (8.1x; wall 4.65 → 0.84 ms, 5.6x)
    20 memories                    0.03 ms either way (wall 0.36 → 0.38 ms first page, 0.13 → 0.16
                                   ms second: the subquery costs a few hundredths of a ms to plan)
A 3-round run at the same load: 3.85 → 0.44 ms (8.8x) at 5,000. Over HTTP (rest_per_process.py,
16 clients) at 20 and 300 memories the list moved 1.02x and 0.99x old → new: there the page's
decryption (a Fernet token per field, ~10 µs each) and the serializer (~14 µs per item) are what
count, not the query. What still grows with the user's size is the count, an index-only scan.

With ``--items 10000`` (the associative cap, MEMORY_ASSOCIATIVE_MAX_PER_USER) and the page timed
without its count too (2026-12-06 11:09, load 6.5-7.3, 5 rounds): first page 0.85 ms wall, 0.30 ms
without the count, so the count is 0.54 ms (second page 0.57 ms; PostgreSQL's own 0.96 of 0.97 ms
under EXPLAIN ANALYZE); at 20 memories it is 0.01 ms in the database. That is the most it can reach
for this kind: every kind but core has a cap (episodes 2,000, patterns 50). A count kept in a
per-user counter row was not added then: every writing path would have had to keep it exact.

Fourteenth stop: the count is the user's ``MemoryTally`` row, which PostgreSQL's triggers keep on
every write whatever its path (``apps.core.tallies``); "count" below is the query before it. At
10,000 memories (``--items 10000``, 3 rounds, 17:21): first page in the database window 4.70 →
count 0.89 → tally 0.04 ms, wall 0.96 → 0.42 ms; at 20 memories 0.03 → 0.07 ms in the database.
"""

from __future__ import annotations

import argparse
import statistics
from functools import partial
from typing import Any

from device_common import make_users, setup_django
from page_timing import median_ms, page_execution_ms


def _window_query() -> Any:
    """The query before, compiled as it was: the count as a window over every item of the kind."""
    from django.db.models import Count, Window

    from apps.core.compiled_queries import CompiledQuery
    from apps.memory import selectors
    from apps.memory.models import MemoryKind

    def page(kind: MemoryKind, user_id: Any) -> Any:
        items = selectors.memory_queryset(user_id=user_id, kind=kind)
        return items.annotate(total=Window(Count("*"))).values_list(*selectors._VIEW_COLUMNS[kind], "total")

    kind = MemoryKind.ASSOCIATIVE
    return CompiledQuery(partial(page, kind), user_id=selectors._user_id_field(kind))


def _counted_query() -> Any:
    """The query before the tallies (fourteenth stop): the count a scalar subquery counting the user's
    index entries of the kind."""
    from django.db.models import Count, Subquery

    from apps.core.compiled_queries import CompiledQuery
    from apps.memory import selectors
    from apps.memory.models import MemoryKind

    def page(kind: MemoryKind, user_id: Any) -> Any:
        items = selectors.memory_queryset(user_id=user_id, kind=kind)
        count = items.order_by().values("user_id").annotate(n=Count("*")).values("n")
        return items.annotate(total=Subquery(count)).values_list(*selectors._VIEW_COLUMNS[kind], "total")

    kind = MemoryKind.ASSOCIATIVE
    return CompiledQuery(partial(page, kind), user_id=selectors._user_id_field(kind))


def _uncounted_query() -> Any:
    """The page alone, without its count: the floor for the tally's read."""
    from apps.core.compiled_queries import CompiledQuery
    from apps.memory import selectors
    from apps.memory.models import MemoryKind

    def page(kind: MemoryKind, user_id: Any) -> Any:
        return selectors.memory_queryset(user_id=user_id, kind=kind).values_list(*selectors._VIEW_COLUMNS[kind])

    kind = MemoryKind.ASSOCIATIVE
    return CompiledQuery(partial(page, kind), user_id=selectors._user_id_field(kind))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--items", type=int, default=5000)
    args = parser.parse_args()

    setup_django(migrate=True)
    from django.db import connection

    from apps.memory.models import EMBEDDING_DIMENSIONS, AssociativeMemory, MemoryKind
    from apps.memory.selectors import _MEMORY_PAGES

    ((small_id, _),) = make_users(1, prefix="memorysize-small")
    ((big_id, _),) = make_users(1, prefix="memorysize-big")
    embedding = [1.0] + [0.0] * (EMBEDDING_DIMENSIONS - 1)
    for user_id, n in ((small_id, 20), (big_id, args.items)):
        have = AssociativeMemory.objects.filter(user_id=user_id).count()
        AssociativeMemory.objects.bulk_create(
            AssociativeMemory(user_id=user_id, content_encrypted=b"sealed", embedding=embedding) for _ in range(have, n)
        )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE memory_associativememory")

    cases = [
        (f"{n} memories, {label}", user_id, offset)
        for n, user_id in ((20, small_id), (args.items, big_id))
        for label, offset in (("first page", 0), ("second page", 20))
    ]
    queries = {
        "window": _window_query(),
        "count": _counted_query(),
        "now": _MEMORY_PAGES[MemoryKind.ASSOCIATIVE],
        "uncounted": _uncounted_query(),
    }
    results: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for name, user_id, offset in cases:
            for label, query in queries.items():
                results.setdefault((name, label), []).append(
                    median_ms(lambda: query.rows(user_id=user_id, limit=20, offset=offset))  # noqa: B023
                )
                results.setdefault((name, label + " in db"), []).append(
                    page_execution_ms(query, {"user_id": user_id}, limit=20, offset=offset)
                )
    print(
        f"page of 20, {args.rounds} rounds (median ms): the call's wall time, then PostgreSQL's execution time; "
        "window (before the sixth stop) → count (before the tallies) → now (the tally), count / now, and the page "
        "without any count"
    )
    for name, *_ in cases:
        for where in ("", " in db"):
            window, count, now, uncounted = (
                statistics.median(results[(name, shape + where)]) for shape in ("window", "count", "now", "uncounted")
            )
            label = name + where
            print(
                f"  {label:36} window {window:6.2f} → count {count:6.2f} → now {now:6.2f} ms   {count / now:5.2f}x"
                f"   (without a count {uncounted:6.2f} ms)"
            )


if __name__ == "__main__":
    main()
