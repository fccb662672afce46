"""The records' and vector items' tallies (``RecordTally``, ``VectorTally``), kept by PostgreSQL's
triggers: every way the rows are written leaves them equal to a count and a sum of the rows, and
the list and the quota read them instead of scanning the user's rows."""

from __future__ import annotations

import hashlib

import pytest
from django.db import connection
from django.db.models import Count, Sum

from apps.core.testing.migration_steps import migration_steps
from apps.storage.models import RecordTally, StorageRecord, VectorItem, VectorTally
from apps.storage.selectors import record_count, storage_used_bytes
from apps.storage.vectors import VectorInput, vector_items_delete, vector_items_upsert

pytestmark = pytest.mark.django_db

BEFORE = ("storage", "0005_record_list_index")
TALLIED = ("storage", "0006_record_and_vector_tallies")


def _record(user, table: str, size: int, n: int = 0) -> StorageRecord:
    key = f"{user.pk}/{table}/{n}/{size}"
    return StorageRecord(user=user, table=table, blob_key=key, checksum="0" * 64, size_bytes=size)


def _vector(user, item_id: str, size: int) -> VectorItem:
    return VectorItem(user=user, item_id=item_id, blob=b"x" * size, checksum="0" * 64, size_bytes=size)


def _input(item_id: str, blob: bytes) -> VectorInput:
    return VectorInput(item_id=item_id, blob=blob, checksum=hashlib.sha256(blob).hexdigest())


def _tallies() -> dict[tuple, tuple[int, int]]:
    return {(t.user_id, t.table): (t.records, t.bytes) for t in RecordTally.objects.all() if t.records or t.bytes}


def _recounted() -> dict[tuple, tuple[int, int]]:
    rows = StorageRecord.objects.values("user_id", "table").annotate(n=Count("*"), b=Sum("size_bytes"))
    return {(row["user_id"], row["table"]): (row["n"], row["b"]) for row in rows}


def _vector_tallies() -> dict:
    return {t.user_id: (t.items, t.bytes) for t in VectorTally.objects.all() if t.items or t.bytes}


def _vectors_recounted() -> dict:
    rows = VectorItem.objects.values("user_id").annotate(n=Count("*"), b=Sum("size_bytes"))
    return {row["user_id"]: (row["n"], row["b"]) for row in rows}


def test_every_way_of_writing_records_keeps_the_tallies_equal_to_the_rows(pro_user, make_user):
    other = make_user(email="other@example.com")
    # a save, and a bulk insert over two users and tables
    one = _record(pro_user, "notes", 10)
    one.save()
    StorageRecord.objects.bulk_create(
        [_record(pro_user, "notes", 5, n) for n in range(3)]
        + [_record(pro_user, "tasks", 7, n) for n in range(2)]
        + [_record(other, "notes", 100, n) for n in range(4)]
    )
    assert (
        _tallies()
        == _recounted()
        == {
            (pro_user.pk, "notes"): (4, 25),
            (pro_user.pk, "tasks"): (2, 14),
            (other.pk, "notes"): (4, 400),
        }
    )

    # a save that changes the size, a bulk update, an update that moves a record to another table
    one.size_bytes = 1_000
    one.save()
    StorageRecord.objects.filter(user=other).update(size_bytes=1)
    moved = StorageRecord.objects.filter(user=pro_user, table="tasks").first()
    moved.table = "notes"
    moved.save()
    assert _tallies() == _recounted()
    assert _tallies()[(pro_user.pk, "notes")] == (5, 1_022)

    # a delete, a bulk delete, and an update that changes nothing counted
    one.delete()
    StorageRecord.objects.filter(user=other).update(checksum="1" * 64)
    StorageRecord.objects.filter(user=pro_user, table="tasks").delete()
    assert _tallies() == _recounted()
    assert _tallies()[(pro_user.pk, "notes")] == (4, 22)
    assert (pro_user.pk, "tasks") not in _tallies()


def test_vector_items_keep_their_tally_equal_to_the_rows(pro_user):
    # the service's upsert: two new items, then one replaced by a bigger blob beside a third new one
    vector_items_upsert(user=pro_user, items=[_input("a", b"x" * 8), _input("b", b"x" * 8)])
    vector_items_upsert(user=pro_user, items=[_input("a", b"y" * 20), _input("c", b"z" * 5)])
    assert _vector_tallies() == _vectors_recounted() == {pro_user.pk: (3, 33)}

    # an INSERT ... ON CONFLICT DO UPDATE (one statement that inserts and updates), a save, a delete
    VectorItem.objects.bulk_create(
        [_vector(pro_user, "b", 2), _vector(pro_user, "d", 4)],
        update_conflicts=True,
        unique_fields=["user", "item_id"],
        update_fields=["blob", "size_bytes"],
    )
    item = VectorItem.objects.get(item_id="c")
    item.blob, item.size_bytes = b"w" * 10, 10
    item.save()
    vector_items_delete(user=pro_user, item_ids=["a"])

    assert _vector_tallies() == _vectors_recounted() == {pro_user.pk: (3, 16)}


def test_deleting_a_user_takes_their_rows_and_tallies_and_leaves_no_error(make_user):
    # given a user with records and vector items
    user = make_user(email="leaving@example.com")
    StorageRecord.objects.bulk_create([_record(user, "notes", 3, n) for n in range(3)])
    VectorItem.objects.bulk_create([_vector(user, "v", 4)])

    # when the user is deleted (Django's cascade, in whichever order it takes the tables)
    user.delete()

    # then nothing of theirs is left
    assert not RecordTally.objects.filter(user_id=user.pk).exists()
    assert not VectorTally.objects.filter(user_id=user.pk).exists()
    # and the foreign keys, deferred to a commit this test never reaches, hold when checked now
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def test_the_quota_and_the_count_read_the_tallies(pro_user):
    StorageRecord.objects.bulk_create([_record(pro_user, "notes", 100, n) for n in range(3)])
    StorageRecord.objects.bulk_create([_record(pro_user, "tasks", 1, n) for n in range(2)])
    VectorItem.objects.bulk_create([_vector(pro_user, "v", 50)])

    assert storage_used_bytes(user=pro_user) == 352
    assert record_count(user=pro_user) == 5
    assert record_count(user=pro_user, table="tasks") == 2
    assert record_count(user=pro_user, table="none") == 0

    # and they follow the tallies, not the rows: a tally set apart from its rows (as a write with the
    # triggers off leaves it) is what they answer
    RecordTally.objects.filter(user=pro_user, table="tasks").update(records=7, bytes=1_000)
    VectorTally.objects.filter(user=pro_user).update(bytes=60)
    assert storage_used_bytes(user=pro_user) == 300 + 1_000 + 60
    assert record_count(user=pro_user) == 10
    assert record_count(user=pro_user, table="tasks") == 7


@pytest.mark.django_db(transaction=True)
def test_the_migration_fills_the_tallies_from_the_rows_already_there(pro_user, make_user):
    other = make_user(email="other@example.com")
    with migration_steps() as steps:
        # given rows written before the tallies existed
        old = steps.to(BEFORE)
        Record = old.get_model("storage", "StorageRecord")
        Vector = old.get_model("storage", "VectorItem")
        for n, (user, table, size) in enumerate([(pro_user, "notes", 5), (pro_user, "notes", 6), (other, "tasks", 9)]):
            Record.objects.create(user_id=user.pk, table=table, blob_key=f"k{n}", checksum="0" * 64, size_bytes=size)
        Vector.objects.create(user_id=other.pk, item_id="v", blob=b"", checksum="0" * 64, size_bytes=3)

        # when it runs
        steps.to(TALLIED)

        # then the tallies hold the rows' counts and bytes, and keep moving with later writes
        assert _tallies() == {(pro_user.pk, "notes"): (2, 11), (other.pk, "tasks"): (1, 9)}
        assert _vector_tallies() == {other.pk: (1, 3)}
        StorageRecord.objects.filter(user=pro_user).delete()
        assert _tallies() == {(other.pk, "tasks"): (1, 9)}

        # and reversing it drops the triggers: writes go on without them
        steps.to(BEFORE)
        Record.objects.create(user_id=other.pk, table="tasks", blob_key="after", checksum="0" * 64, size_bytes=1)
