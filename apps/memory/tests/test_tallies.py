"""The users' memory tallies (``MemoryTally``), kept by PostgreSQL's triggers: every way memory is
written, forgotten or evicted leaves each kind's tally equal to a count of its rows, and the counts,
the list and the caps read it."""

from __future__ import annotations

import pytest
from django.db import connection

from apps.core.testing.migration_steps import migration_steps
from apps.memory.models import MODEL_OF_KIND, CoreMemory, Episode, MemoryKind, MemoryTally
from apps.memory.retention import memory_evict_over_cap
from apps.memory.selectors import amemory_counts, memory_counts, memory_kind_count
from apps.memory.services import (
    associative_memory_add,
    core_memory_delete,
    core_memory_set,
    episode_record,
    memory_delete_all,
    memory_item_delete,
    memory_kind_delete,
    pattern_upsert,
)

from .conftest import axis_embedding

pytestmark = pytest.mark.django_db

BEFORE = ("memory", "0008_memory_list_indexes")
TALLIED = ("memory", "0009_memory_tallies")


def _tallied(user) -> dict[str, int]:
    return {t.kind: t.items for t in MemoryTally.objects.filter(user=user)}


def _counted(user) -> dict[str, int]:
    return {kind.value: MODEL_OF_KIND[kind].objects.filter(user=user).count() for kind in MemoryKind}


def _write_some(user, tag: str) -> None:
    core_memory_set(user_id=user.id, key=f"{tag}-tz", value="Europe/Paris")
    core_memory_set(user_id=user.id, key=f"{tag}-tz", value="Europe/Berlin")  # an update: no new row
    core_memory_set(user_id=user.id, key=f"{tag}-lang", value="fr")
    associative_memory_add(user_id=user.id, content=f"{tag} likes tea", embedding=axis_embedding(1))
    associative_memory_add(user_id=user.id, content=f"{tag} likes tea", embedding=axis_embedding(1))  # reinforced
    episode_record(user_id=user.id, session_id=f"{tag}-s1", summary="planned the week")
    pattern_upsert(user_id=user.id, description=f"{tag} reviews on Fridays", confidence=0.7)
    pattern_upsert(user_id=user.id, description=f"{tag} reviews on Fridays", confidence=0.9)  # an upsert


def test_writes_and_forgetting_keep_each_kinds_tally_equal_to_its_rows(user, make_user):
    bob = make_user("bob@example.com")
    _write_some(user, "alice")
    _write_some(bob, "bob")
    assert _tallied(user) == _counted(user)
    assert _tallied(bob) == _counted(bob)
    assert memory_counts(user_id=user.id) == _counted(user)

    # one item, a key, a whole kind: each takes off what it deleted, and only the owner's
    core_memory_delete(user_id=user.id, key="alice-lang")
    episode = Episode.objects.get(user=user)
    memory_item_delete(user_id=user.id, kind=MemoryKind.EPISODIC, item_id=episode.id)
    memory_kind_delete(user_id=user.id, kind=MemoryKind.PROACTIVE)
    assert _tallied(user) == _counted(user) == {"core": 1, "associative": 2, "episodic": 0, "proactive": 0}
    assert _tallied(bob) == _counted(bob)

    memory_delete_all(user_id=user.id)
    assert memory_counts(user_id=user.id) == dict.fromkeys(_counted(user), 0)
    assert memory_kind_count(user_id=bob.id, kind=MemoryKind.CORE) == 2


def test_a_user_who_never_held_a_kind_counts_zero_of_it(user):
    core_memory_set(user_id=user.id, key="tz", value="UTC")

    assert memory_counts(user_id=user.id) == {"core": 1, "associative": 0, "episodic": 0, "proactive": 0}
    assert memory_kind_count(user_id=user.id, kind=MemoryKind.EPISODIC) == 0


@pytest.mark.django_db(transaction=True)
async def test_the_counts_read_on_the_loop_are_the_same(user):
    from asgiref.sync import sync_to_async

    from apps.core import loop_db

    await sync_to_async(_write_some)(user, "alice")

    # when they are read as the server reads them, on its loop's own pool
    try:
        with loop_db.loop_reads():
            counts = await amemory_counts(user_id=user.id)
        read_on_the_loop = (await loop_db.loop_pool()).get_stats().get("requests_num", 0)
    finally:
        await loop_db.loop_pools_close()

    # then that pool answered, with what a count of the rows says
    assert read_on_the_loop == 1
    assert counts == await sync_to_async(_counted)(user)


def test_eviction_over_a_cap_moves_the_tally_with_the_rows(user, settings):
    settings.MEMORY_EPISODES_MAX_PER_USER = 3
    for n in range(5):
        episode_record(user_id=user.id, session_id=f"s{n}", summary=f"episode {n}")

    # the cap's check reads the tally (5), and what it deletes comes off it
    assert memory_evict_over_cap(user_id=user.id, kind=MemoryKind.EPISODIC) == 2
    assert Episode.objects.filter(user=user).count() == 3
    assert _tallied(user)["episodic"] == 3


def test_deleting_a_user_leaves_no_tally_and_no_broken_key(make_user):
    leaving = make_user("leaving@example.com")
    _write_some(leaving, "leaving")

    leaving.delete()

    assert not MemoryTally.objects.filter(user_id=leaving.pk).exists()
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the foreign keys, deferred to a commit, checked now


@pytest.mark.django_db(transaction=True)
def test_the_migration_fills_the_tallies_from_the_memory_already_there(user):
    with migration_steps() as steps:
        # given memory written before the tallies existed
        old = steps.to(BEFORE)
        OldCore = old.get_model("memory", "CoreMemory")
        for n in range(3):
            OldCore.objects.create(
                user_id=user.pk, key_digest=bytes([n]) * 32, key_encrypted=b"k", value_encrypted=b"v"
            )

        # when it runs
        steps.to(TALLIED)

        # then the core kind is tallied, the others have no row (and count zero), and writes move it
        assert _tallied(user) == {"core": 3}
        CoreMemory.objects.filter(user=user).first().delete()
        assert memory_counts(user_id=user.id) == {"core": 2, "associative": 0, "episodic": 0, "proactive": 0}
