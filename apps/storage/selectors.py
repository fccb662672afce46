"""Reads of storage: every query is scoped to its owner; another user's id is simply not found."""

from __future__ import annotations

from typing import Any

from django.db.models import BigIntegerField, CharField, F, Func, QuerySet, Subquery, Sum
from django.db.models.functions import Cast
from pgvector.django import CosineDistance

from apps.core.compiled_queries import CompiledQuery
from apps.core.errors import NotFoundError

from .models import Backup, BackupStatus, RecordTally, StorageRecord, VectorItem, VectorTally


def record_list(*, user: Any, table: str | None = None) -> QuerySet[StorageRecord]:
    records = StorageRecord.objects.filter(user=user)
    return records.filter(table=table) if table else records


def record_count(*, user: Any, table: str | None = None) -> int:
    """How many records the user keeps (in ``table``, or in all): their tallies, not a scan."""
    return sum(_record_total(user.pk, table or None))  # no tally row yet: 0


def _record_total(user_id: Any, table: str | None) -> QuerySet[Any]:
    # One tally row per (user, table), kept by PostgreSQL with the records (``RecordTally``): the
    # count of a page is a row or a few, whatever the user's size, where a count of the records
    # read every one of the user's index entries (~0.4 ms at 5,000 records).
    tallies = RecordTally.objects.filter(user_id=user_id)
    if table is not None:
        return tallies.filter(table=table).values_list("records", flat=True)
    in_all = Cast(Sum("records"), BigIntegerField())  # sum(bigint) is numeric
    return tallies.order_by().values("user_id").annotate(n=in_all).values_list("n", flat=True)


RECORD_META_COLUMNS = ("id", "table", "checksum", "size_bytes", "created_at", "updated_at")


class UnixSeconds(Func):
    """A ``timestamptz`` as whole Unix seconds, rounded down (what ``int(value.timestamp())`` answers
    for any date after 1970)."""

    template = "floor(extract(epoch FROM %(expressions)s))::bigint"
    output_field = BigIntegerField()


def _record_page(user_id: Any, table: str | None = None) -> QuerySet[Any]:
    records = StorageRecord.objects.filter(user_id=user_id)
    if table is not None:
        records = records.filter(table=table)
    # Every row carries the number of all matching rows: one round trip answers the page and its count.
    # The count is a scalar subquery over the user's tallies (``_record_total``), run once; not a
    # window over the rows, which read and sorted every matching row for a page of 50 (12 ms at
    # 5,000 records, 1 ms at 20), nor a count of them, which read every index entry.
    count = _record_total(user_id, table)
    # The dates come as the Unix seconds the list answers: psycopg's timestamptz loader, which Django
    # subclasses in Python, cost ~3.5 µs per date, more than the rest of a row. The id comes as its
    # text: psycopg's uuid loader (Python) and str() cost ~1.5 µs a row.
    answered = {
        "id_text": Cast("id", CharField()),
        "created_unix": UnixSeconds(F("created_at")),
        "updated_unix": UnixSeconds(F("updated_at")),
    }
    columns = [_AS_ANSWERED.get(c, c) for c in RECORD_META_COLUMNS]
    return records.annotate(**answered, total=Subquery(count)).values_list(*columns, "total")


# The page's columns read as the list answers them (``_record_page``).
_AS_ANSWERED = {"id": "id_text", "created_at": "created_unix", "updated_at": "updated_unix"}


# The client lists its records on every sync: compiled once per process, with and without a table.
_USER_ID_FIELD = StorageRecord._meta.get_field("user").target_field
_RECORD_PAGE = CompiledQuery(_record_page, user_id=_USER_ID_FIELD)
_RECORD_PAGE_OF_TABLE = CompiledQuery(
    _record_page, user_id=_USER_ID_FIELD, table=StorageRecord._meta.get_field("table")
)


def record_page(
    *, user: Any, offset: int, limit: int, table: str | None = None
) -> tuple[list[tuple[Any, ...]], int | None]:
    """The user's record metadata (``RECORD_META_COLUMNS``, newest first, the id as text, the dates
    as ``UnixSeconds``) from ``offset``, at most ``limit``, and how many records match in all; that
    number is None when the page is empty (past the end, or no record at all)."""
    if table:
        rows = _RECORD_PAGE_OF_TABLE.rows(user_id=user.pk, table=table, limit=limit, offset=offset)
    else:
        rows = _RECORD_PAGE.rows(user_id=user.pk, limit=limit, offset=offset)
    return _page_and_total(rows)


async def arecord_page(
    *, user: Any, offset: int, limit: int, table: str | None = None
) -> tuple[list[tuple[Any, ...]], int | None]:
    """``record_page`` awaited (on the server's loop, ``CompiledQuery.arows``)."""
    if table:
        rows = await _RECORD_PAGE_OF_TABLE.arows(user_id=user.pk, table=table, limit=limit, offset=offset)
    else:
        rows = await _RECORD_PAGE.arows(user_id=user.pk, limit=limit, offset=offset)
    return _page_and_total(rows)


def _page_and_total(rows: list[tuple[Any, ...]]) -> tuple[list[tuple[Any, ...]], int | None]:
    # Each row ends with the number of all matching rows (``_record_page``).
    if not rows:
        return [], None
    return [row[:-1] for row in rows], rows[0][-1]


def _owned_record(user_id: Any, record_id: Any) -> QuerySet[StorageRecord]:
    return StorageRecord.objects.filter(user_id=user_id, id=record_id)


# The client reads records one by one on every sync: compiled once per process.
_OWNED_RECORD = CompiledQuery(_owned_record, user_id=_USER_ID_FIELD, record_id=StorageRecord._meta.pk)


def record_get(*, user: Any, record_id: Any) -> StorageRecord:
    return _found(_OWNED_RECORD.first(user_id=user.pk, record_id=record_id))


async def arecord_get(*, user: Any, record_id: Any) -> StorageRecord:
    """``record_get`` awaited (on the server's loop, ``CompiledQuery.afirst``)."""
    return _found(await _OWNED_RECORD.afirst(user_id=user.pk, record_id=record_id))


def _found(record: StorageRecord | None) -> StorageRecord:
    if record is None:
        raise NotFoundError("Record")
    return record


def storage_used_bytes(*, user: Any) -> int:
    """Bytes the user really stores against ``cloud_storage_gb``: records plus vector items, read
    from their tallies (``RecordTally``, ``VectorTally``), which move with the rows' writes."""
    records = RecordTally.objects.filter(user=user).aggregate(total=Sum("bytes"))["total"] or 0
    vectors = VectorTally.objects.filter(user=user).values_list("bytes", flat=True).first() or 0
    return int(records) + int(vectors)


def vector_search_by_vector(*, user: Any, query_vector: list[float], top_k: int) -> list[tuple[VectorItem, float]]:
    items = (
        VectorItem.objects.filter(user=user, vector__isnull=False)
        .annotate(distance=CosineDistance("vector", query_vector))
        .order_by("distance", "id")[:top_k]
    )
    return [(item, 1.0 - float(item.distance)) for item in items]


def vector_search_by_blob(*, user: Any, checksum: str, blob: bytes, top_k: int) -> list[tuple[VectorItem, float]]:
    # The checksum narrows by index; comparing the bytes rules out a (theoretical) collision.
    candidates = VectorItem.objects.filter(user=user, checksum=checksum).order_by("-updated_at")[:top_k]
    return [(item, 1.0) for item in candidates if bytes(item.blob) == blob]


def backup_latest(*, user: Any) -> Backup | None:
    return (
        Backup.objects.filter(user=user, status=BackupStatus.COMPLETE).order_by("-completed_at", "-created_at").first()
    )


def backup_history(*, user: Any) -> QuerySet[Backup]:
    return Backup.objects.filter(user=user, status=BackupStatus.COMPLETE).order_by("-completed_at", "-created_at")


def backup_get(*, user: Any, backup_id: Any) -> Backup:
    backup = Backup.objects.filter(user=user, id=backup_id).exclude(status=BackupStatus.FAILED).first()
    if backup is None:
        raise NotFoundError("Backup")
    return backup


def backup_used_bytes(*, user: Any) -> int:
    """Bytes counted against ``backup_gb``: complete backups plus uploads in flight (their declared size)."""
    total = (
        Backup.objects.filter(user=user).exclude(status=BackupStatus.FAILED).aggregate(total=Sum("size_bytes"))["total"]
    )
    return int(total or 0)
