"""The schema the benchmark chose: vectors inline, an HNSW index on their halfvec copies searched
with iterative scans (database defaults), the owner's btree for small users."""

from __future__ import annotations

import pytest
from django.db import connection

from apps.memory.services import episode_record

from .conftest import axis_embedding

pytestmark = pytest.mark.django_db


def test_embeddings_are_inline_with_a_halfvec_hnsw_index_and_iterative_scans_by_default():
    # when
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, a.attstorage FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "WHERE a.attname = 'embedding' AND c.relname IN ('memory_associativememory', 'memory_episode')"
        )
        storage = dict(cursor.fetchall())
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename IN ('memory_associativememory', 'memory_episode')"
        )
        indexes = [row[0] for row in cursor.fetchall()]
        cursor.execute(
            "SELECT unnest(setconfig) FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase "
            "WHERE d.datname = current_database()"
        )
        database_settings = {row[0] for row in cursor.fetchall()}
    # then: PLAIN keeps the 6 KB vector in the row the exact re-rank reads anyway
    assert storage == {"memory_associativememory": "p", "memory_episode": "p"}
    [hnsw] = [index for index in indexes if "hnsw" in index]
    assert "memory_associativememory" in hnsw
    assert "halfvec(1536)" in hnsw
    assert "halfvec_cosine_ops" in hnsw
    assert any("user_id" in index for index in indexes)
    assert {"hnsw.iterative_scan=relaxed_order", "hnsw.ef_search=100"} <= database_settings


def test_episode_embedding_is_kept_when_given(user):
    # when
    with_vector = episode_record(user_id=user.id, session_id="s", summary="x", embedding=axis_embedding(1, 1))
    without = episode_record(user_id=user.id, session_id="s", summary="y")
    # then
    with_vector.refresh_from_db()
    without.refresh_from_db()
    assert list(with_vector.embedding[:2]) == pytest.approx([2**-0.5, 2**-0.5])
    assert without.embedding is None
