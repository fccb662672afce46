"""``manage.py tallies_check``: a tally that no longer matches its rows (its trigger was bypassed) is
found, named, and set right with ``--repair``; the others are left as they are. The nightly task
(``core.tallies_check``) logs and counts the same drift, and repairs it with ``TALLIES_AUTO_REPAIR``."""

from __future__ import annotations

import logging

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django_celery_beat.models import PeriodicTask
from prometheus_client.parser import text_string_to_metric_families

from apps.core import metrics
from apps.core.tallies import registered_tallies, tally_drift, tally_triggers
from apps.core.tasks import TALLIES_CHECK_TASK, tallies_check_task
from apps.core.vectors import EMBEDDING_DIMENSIONS
from apps.memory.models import MemoryKind, MemoryTally
from apps.memory.selectors import memory_counts
from apps.memory.services import associative_memory_add, core_memory_set
from apps.storage.models import RecordTally, StorageRecord

pytestmark = pytest.mark.django_db


def _bypassing(sql: str, params: list) -> None:
    """Run ``sql`` with the triggers off, as a replica applying changes or a data-only restore does."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(sql, params)
        cursor.execute("SET LOCAL session_replication_role = origin")


def _record(user, n: int) -> StorageRecord:
    return StorageRecord(user=user, table="notes", blob_key=f"check/{user.pk}/{n}", checksum="0" * 64, size_bytes=10)


def test_every_tallied_source_is_registered():
    sources = {tally.source for tally in registered_tallies()}

    assert sources == {
        "storage_storagerecord",
        "storage_vectoritem",
        "memory_corememory",
        "memory_associativememory",
        "memory_episode",
        "memory_proactivepattern",
        "agents_agentrunlog",
    }


# The statements whose triggers keep each source's tally: a run's updates (status, progress, lease)
# never change its user or agent, so its source has no UPDATE trigger (agents 0010).
_NO_UPDATE_TRIGGER = {"agents_agentrunlog"}


def test_each_registered_tally_is_what_its_triggers_keep():
    # The apps register their tallies beside the migrations that made the triggers; a change to one
    # without the other would have the check compare a tally with the wrong rows.
    for tally in registered_tallies():
        (made,) = [sql for sql in tally_triggers(tally).sql if sql.startswith("CREATE FUNCTION")]
        expected_body = made.split("$tally$")[1]
        with connection.cursor() as cursor:
            cursor.execute("SELECT prosrc FROM pg_proc WHERE proname = %s", [f"{tally.source}_tally"])
            (body,) = cursor.fetchone()
            cursor.execute(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass AND tgname LIKE %s",
                [tally.source, f"{tally.source}_tally_on_%"],
            )
            triggers = {name for (name,) in cursor.fetchall()}
        events = {"insert", "delete"} | (set() if tally.source in _NO_UPDATE_TRIGGER else {"update"})
        assert body == expected_body, tally.source
        assert triggers == {f"{tally.source}_tally_on_{event}" for event in events}, tally.source


def test_exact_tallies_pass_the_check(user, capsys):
    StorageRecord.objects.bulk_create([_record(user, n) for n in range(3)])
    core_memory_set(user_id=user.id, key="tz", value="UTC")

    call_command("tallies_check")

    said = capsys.readouterr().out
    assert "differ" not in said
    assert said.count(": exact") == len(registered_tallies())


def test_a_bypassed_write_is_found_and_repaired(user, make_user, capsys):
    # given records tallied as they were written, then two more written with the trigger off
    other = make_user("other@example.com")
    StorageRecord.objects.bulk_create([_record(user, n) for n in range(3)] + [_record(other, 9)])
    _bypassing(
        'INSERT INTO storage_storagerecord (id, created_at, updated_at, user_id, "table", blob_key, checksum, '
        "size_bytes) SELECT gen_random_uuid(), now(), now(), %s, 'notes', 'raw/' || n, '', 5 "
        "FROM generate_series(1, 2) n",
        [user.pk],
    )
    (records,) = [t for t in registered_tallies() if t.source == "storage_storagerecord"]

    # then the check names the user's group, with both figures, and fails
    (wrong,) = tally_drift(records)
    assert (wrong["user_id"], wrong["table"]) == (user.pk, "notes")
    assert (wrong["tallied_records"], wrong["counted_records"]) == (3, 5)
    assert (wrong["tallied_bytes"], wrong["counted_bytes"]) == (30, 40)
    with pytest.raises(CommandError) as failed:
        call_command("tallies_check")
    assert failed.value.returncode == 1

    # when repaired, then the tally is the rows' again, and the other user's is as it was
    call_command("tallies_check", "--repair")
    assert tally_drift(records) == []
    assert RecordTally.objects.get(user=user, table="notes").records == 5
    assert RecordTally.objects.get(user=other, table="notes").records == 1
    assert "repaired: exact" in capsys.readouterr().out


def test_repairing_one_kind_of_memory_leaves_the_others_rows_alone(user):
    # given an associative memory tallied, and a core memory written with the trigger off
    associative_memory_add(user_id=user.id, content="likes tea", embedding=[1.0] + [0.0] * (EMBEDDING_DIMENSIONS - 1))
    _bypassing(
        "INSERT INTO memory_corememory (id, created_at, updated_at, user_id, key_digest, key_encrypted, "
        "value_encrypted) VALUES (gen_random_uuid(), now(), now(), %s, %s, %s, %s)",
        [user.pk, b"\x01" * 32, b"k", b"v"],
    )
    assert memory_counts(user_id=user.id)["core"] == 0

    # when repaired
    call_command("tallies_check", "--repair")

    # then the core kind counts its row, and the associative tally is unchanged
    assert memory_counts(user_id=user.id) == {"core": 1, "associative": 1, "episodic": 0, "proactive": 0}
    assert MemoryTally.objects.get(user=user, kind=MemoryKind.ASSOCIATIVE).items == 1


# The nightly check (Celery beat) ----------------------------------------------------------------


def _drift_counted(source: str) -> float:
    """``adiuva_tally_drift_total`` for ``source``, as a scrape reads it (every process's files)."""
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        if family.name == "adiuva_tally_drift":
            for sample in family.samples:
                if sample.name.endswith("_total") and sample.labels.get("source") == source:
                    return sample.value
    return 0.0


def _records_bypassed(user) -> None:
    StorageRecord.objects.bulk_create([_record(user, n) for n in range(2)])
    _bypassing(
        'INSERT INTO storage_storagerecord (id, created_at, updated_at, user_id, "table", blob_key, checksum, '
        "size_bytes) VALUES (gen_random_uuid(), now(), now(), %s, 'notes', 'raw/1', '', 5)",
        [user.pk],
    )


def test_the_nightly_check_logs_and_counts_a_drift_and_leaves_it_by_default(user, caplog, settings):
    settings.TALLIES_AUTO_REPAIR = False
    _records_bypassed(user)
    counted_before = _drift_counted("storage_storagerecord")

    with caplog.at_level(logging.ERROR, logger="apps.core.tallies"):
        still_differ = tallies_check_task()

    assert still_differ == 1
    (logged,) = [record for record in caplog.records if record.name == "apps.core.tallies"]
    assert logged.levelno == logging.ERROR
    assert logged.source == "storage_storagerecord"
    assert logged.sample[0]["counted_records"] == 3
    assert "repaired" not in logged.getMessage()
    assert _drift_counted("storage_storagerecord") == counted_before + 1
    (records,) = [t for t in registered_tallies() if t.source == "storage_storagerecord"]
    assert tally_drift(records) != []  # left for an operator


def test_the_nightly_check_repairs_with_tallies_auto_repair(user, caplog, settings):
    settings.TALLIES_AUTO_REPAIR = True
    _records_bypassed(user)

    with caplog.at_level(logging.ERROR, logger="apps.core.tallies"):
        still_differ = tallies_check_task()

    assert still_differ == 0
    assert RecordTally.objects.get(user=user, table="notes").records == 3
    (logged,) = [record for record in caplog.records if record.name == "apps.core.tallies"]
    assert logged.getMessage().endswith("; repaired")


def test_exact_tallies_make_the_nightly_check_silent(user, caplog):
    StorageRecord.objects.bulk_create([_record(user, n) for n in range(2)])

    with caplog.at_level(logging.ERROR, logger="apps.core.tallies"):
        assert tallies_check_task() == 0

    assert [record for record in caplog.records if record.name == "apps.core.tallies"] == []


def test_beat_runs_the_check_nightly():
    task = PeriodicTask.objects.get(task=TALLIES_CHECK_TASK)

    assert task.enabled
    assert (task.crontab.minute, task.crontab.hour, str(task.crontab.timezone)) == ("43", "3", "UTC")
