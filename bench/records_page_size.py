"""How the records list's page costs with the user's size: ``record_page`` (a page read by index,
the count a scalar subquery over an index) against the window count it replaced (every matching
row read and sorted for each page), for a user with 20 records and one with 5,000, same run.

    .venv/bin/python -m adiuva.embedded run -- .venv/bin/python bench/records_page_size.py [--rounds 5]

Each round times each (user, page, query) pair back to back (median of 30 calls, after 5 warm-up
calls), with the table analyzed and vacuumed first, as autovacuum keeps it in production.

Figures of 2026-12-06 08:07 (2 cores shared with other engineers' runs and a test suite, load
8-9), page of 50, 3 rounds: PostgreSQL's execution time
    5,000 records, first page         window 5.85 ms → 0.52 ms (11.3x)
    5,000 records, second page        window 2.02 ms → 0.52 ms (3.9x)
    5,000 records, one of 3 tables    window 1.14 ms → 0.26 ms (4.4x; that table's index serves both)
    20 records                        0.04 ms either way
The calls' wall times on that box moved 1.4-1.8x at 5,000 records and within the noise at 20; an
earlier single run in one process (load ~10, the table analyzed): 12.4 ms → 1.3 ms for the first
page at 5,000 records. What still grew with the user's size was the count: an index-only scan of
the user's entries (~0.4 ms at 5,000), which ``X-Total-Count`` needs.

Fourteenth stop: the count is read from the user's ``RecordTally`` rows (``apps.core.tallies``);
"count" below is the query before them, and the storage quota's sum is timed both ways too.
2026-12-07 17:25, 3 rounds, 5,000 records, first page in the database: window 1.18 → count 0.41 →
tally 0.05 ms (wall 0.83 → 0.34 ms); the quota 1.12 → 0.82 ms wall.
"""

from __future__ import annotations

import argparse
import statistics
import uuid
from typing import Any

from device_common import make_users, setup_django
from page_timing import median_ms, page_execution_ms


def _before_queries() -> dict[str, dict[bool, Any]]:
    """The queries before, compiled as they were, without and with a table: ``window``, the count as a
    window over every matching row (before the sixth stop); ``count``, a scalar subquery counting the
    user's index entries (before the tallies, fourteenth stop)."""
    from django.db.models import Count, Subquery, Window

    from apps.core.compiled_queries import CompiledQuery
    from apps.storage.models import StorageRecord
    from apps.storage.selectors import RECORD_META_COLUMNS

    def records(user_id: Any, table: str | None) -> Any:
        rows = StorageRecord.objects.filter(user_id=user_id)
        return rows.filter(table=table) if table is not None else rows

    def window(user_id: Any, table: str | None = None) -> Any:
        return records(user_id, table).annotate(total=Window(Count("*"))).values_list(*RECORD_META_COLUMNS, "total")

    def count(user_id: Any, table: str | None = None) -> Any:
        counted = records(user_id, table).order_by().values("user_id").annotate(n=Count("*")).values("n")
        return records(user_id, table).annotate(total=Subquery(counted)).values_list(*RECORD_META_COLUMNS, "total")

    user_field = StorageRecord._meta.get_field("user").target_field
    table_field = StorageRecord._meta.get_field("table")
    return {
        name: {
            False: CompiledQuery(page, user_id=user_field),
            True: CompiledQuery(page, user_id=user_field, table=table_field),
        }
        for name, page in (("window", window), ("count", count))
    }


def _quota_before(user: Any) -> int:
    """``storage_used_bytes`` before the tallies: a sum over every record and vector item of the user."""
    from django.db.models import Sum

    from apps.storage.models import StorageRecord, VectorItem

    records = StorageRecord.objects.filter(user=user).aggregate(total=Sum("size_bytes"))["total"] or 0
    vectors = VectorItem.objects.filter(user=user).aggregate(total=Sum("size_bytes"))["total"] or 0
    return int(records) + int(vectors)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--records", type=int, default=5000)
    args = parser.parse_args()

    setup_django(migrate=True)
    from django.db import connection

    from apps.accounts.models import User
    from apps.storage.models import StorageRecord
    from apps.storage.selectors import _RECORD_PAGE, _RECORD_PAGE_OF_TABLE, record_page, storage_used_bytes

    ((small_id, _),) = make_users(1, prefix="recordsize-small")
    ((big_id, _),) = make_users(1, prefix="recordsize-big")
    for user_id, n in ((small_id, 20), (big_id, args.records)):
        have = StorageRecord.objects.filter(user_id=user_id).count()
        StorageRecord.objects.bulk_create(
            StorageRecord(
                user_id=user_id, table=f"t{i % 3}", blob_key=f"size/{uuid.uuid4()}", checksum="0" * 64, size_bytes=1
            )
            for i in range(have, n)
        )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE storage_storagerecord")

    cases = [
        (f"{n} records, {label}", user_id, table, offset)
        for n, user_id in ((20, small_id), (args.records, big_id))
        for label, table, offset in (("first page", None, 0), ("second page", None, 50), ("one table", "t1", 0))
    ]
    before = _before_queries()
    results: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for name, user_id, table, offset in cases:
            user = User.objects.get(pk=user_id)
            values = {"user_id": user_id, **({"table": table} if table else {})}
            for shape, queries in before.items():
                query = queries[table is not None]
                results.setdefault((name, shape), []).append(
                    median_ms(lambda: query.rows(limit=50, offset=offset, **values))  # noqa: B023
                )
                results.setdefault((name, shape + " in db"), []).append(
                    page_execution_ms(query, values, limit=50, offset=offset)
                )
            results.setdefault((name, "now"), []).append(
                median_ms(lambda: record_page(user=user, table=table, offset=offset, limit=50))  # noqa: B023
            )
            now_query = _RECORD_PAGE_OF_TABLE if table else _RECORD_PAGE
            results.setdefault((name, "now in db"), []).append(
                page_execution_ms(now_query, values, limit=50, offset=offset)
            )
        for n, user_id in ((20, small_id), (args.records, big_id)):
            user = User.objects.get(pk=user_id)
            assert _quota_before(user) == storage_used_bytes(user=user)
            results.setdefault((f"{n} records, quota", "count"), []).append(median_ms(lambda: _quota_before(user)))  # noqa: B023
            results.setdefault((f"{n} records, quota", "now"), []).append(
                median_ms(lambda: storage_used_bytes(user=user))  # noqa: B023
            )
    print(
        f"page of 50, {args.rounds} rounds (median ms): the call's wall time, then PostgreSQL's execution time; "
        "window (before the sixth stop) → count (before the tallies) → now (tallies), and count / now"
    )
    for name, *_ in cases:
        for where in ("", " in db"):
            window_ms, count_ms, now_ms = (
                statistics.median(results[(name, shape + where)]) for shape in ("window", "count", "now")
            )
            label = name + where
            print(
                f"  {label:34} window {window_ms:6.2f} → count {count_ms:6.2f} → now {now_ms:6.2f} ms"
                f"   {count_ms / now_ms:5.2f}x"
            )
    print("storage_used_bytes (the quota's figure, wall time): a sum over the rows (count) → the tallies (now)")
    for n in (20, args.records):
        count_ms, now_ms = (statistics.median(results[(f"{n} records, quota", shape)]) for shape in ("count", "now"))
        print(f"  {n:>6} records{'':19} count {count_ms:6.2f} → now {now_ms:6.2f} ms   {count_ms / now_ms:5.2f}x")


if __name__ == "__main__":
    main()
