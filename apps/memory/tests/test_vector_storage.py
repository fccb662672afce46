"""The schema and search the benchmark chose: vectors inline, their sign bits in a covering index
read by the first pass, and a shortlist re-ranked exactly; the result is the exact top-k."""

from __future__ import annotations

import math
import random

import pytest
from django.db import connection

from apps.core.errors import ApplicationError
from apps.memory.learning import associative_memory_learn
from apps.memory.models import EMBEDDING_DIMENSIONS, AssociativeMemory
from apps.memory.selectors import SHORTLIST_MIN, associative_memory_search, memory_context
from apps.memory.services import associative_memory_add, episode_record

from .conftest import axis_embedding

pytestmark = pytest.mark.django_db

TOPICS = 30


def _unit(values: list[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in values))
    return [v / norm for v in values]


def _near(vector: list[float], rng: random.Random, noise: float) -> list[float]:
    """``vector`` plus a random direction of length ``noise`` (1.0: cosine about 0.7)."""
    direction = _unit([rng.uniform(-1.0, 1.0) for _ in vector])
    return _unit([v + noise * d for v, d in zip(vector, direction, strict=True)])


def _exact_top(user_id, query: list[float], k: int) -> list[str]:
    # The reference: every row of the owner ranked by exact cosine distance, no first pass.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM memory_associativememory WHERE user_id = %s ORDER BY embedding <=> %s::vector LIMIT %s",
            [user_id, str(query), k],
        )
        return [str(row[0]) for row in cursor.fetchall()]


def test_embeddings_are_inline_with_their_sign_bits_in_a_covering_index_and_no_hnsw():
    # when
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, a.attstorage FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "WHERE a.attname = 'embedding' AND c.relname IN ('memory_associativememory', 'memory_episode')"
        )
        storage = dict(cursor.fetchall())
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'memory_associativememory'")
        indexes = dict(cursor.fetchall())
        cursor.execute(
            "SELECT unnest(setconfig) FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase "
            "WHERE d.datname = current_database()"
        )
        database_settings = {row[0] for row in cursor.fetchall()}
    # then: PLAIN keeps the 6 KB vector in the row the exact re-rank reads anyway
    assert storage == {"memory_associativememory": "p", "memory_episode": "p"}
    assert indexes["memory_assoc_user_bits"].endswith("(user_id) INCLUDE (embedding_bits, id)")
    assert not [index for index in indexes.values() if "hnsw" in index]
    assert not [setting for setting in database_settings if setting.startswith("hnsw.")]


def test_sign_bits_follow_every_write_of_the_embedding(user):
    # given: a memory added, then learned again with another vector (the reinforcing update)
    memory = associative_memory_add(user_id=user.id, content="tea", embedding=axis_embedding(1, -1))
    learned = associative_memory_learn(user_id=user.id, content="coffee", embedding=axis_embedding(1, 1))
    associative_memory_learn(user_id=user.id, content="coffee", embedding=axis_embedding(-1, -1))
    # when
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id::text, substring(embedding_bits::text, 1, 3), "
            "embedding_bits = binary_quantize(embedding)::bit(1536) FROM memory_associativememory"
        )
        bits = {row[0]: row[1:] for row in cursor.fetchall()}
    # then: sign bits of the current vector (a zero dimension counts as not positive)
    assert bits == {str(memory.id): ("100", True), str(learned.id): ("000", True)}


def test_search_returns_the_exact_top_hits_when_the_shortlist_is_a_fraction_of_the_rows(user):
    # given: three times more memories than the first pass shortlists, in topics like real ones,
    # so a first pass that ranked badly would leave exact neighbours out of the re-rank
    rng = random.Random(11)
    topics = [_unit([rng.uniform(-1.0, 1.0) for _ in range(EMBEDDING_DIMENSIONS)]) for _ in range(TOPICS)]
    vectors = [_near(topics[index % TOPICS], rng, noise=1.0) for index in range(3 * SHORTLIST_MIN)]
    content_of = {
        str(associative_memory_add(user_id=user.id, content=f"memory {index}", embedding=vector).id): f"memory {index}"
        for index, vector in enumerate(vectors)
    }
    queries = [_near(vectors[rng.randrange(len(vectors))], rng, noise=1.0) for _ in range(5)]
    for query in queries:
        # when
        hits = associative_memory_search(user_id=user.id, query_embedding=query, top_k=10)
        context = memory_context(user_id=user.id, query_embedding=query, top_k=10)
        # then: the same memories in the same order as the exact scan of all rows, scored by cosine
        exact = [content_of[memory_id] for memory_id in _exact_top(user.id, query, 10)]
        assert [hit.content for hit in hits] == exact
        assert [hit.content for hit in context.associative] == exact
        nearest = vectors[int(exact[0].split()[1])]
        assert hits[0].score == pytest.approx(sum(a * b for a, b in zip(query, nearest, strict=True)), abs=1e-5)


def test_search_never_reaches_another_users_rows_even_when_closer(make_user):
    # given: bob's memory is the query itself, alice's is merely close
    alice, bob = make_user(), make_user()
    associative_memory_add(user_id=alice.id, content="alice's", embedding=axis_embedding(1, 1))
    associative_memory_add(user_id=bob.id, content="bob's", embedding=axis_embedding(1))
    # when
    hits = associative_memory_search(user_id=alice.id, query_embedding=axis_embedding(1), top_k=5)
    # then
    assert [hit.content for hit in hits] == ["alice's"]


@pytest.mark.parametrize("size", [1, 768, 1537])
def test_a_context_query_vector_of_the_wrong_size_is_a_clear_error_and_no_search_runs(user, size):
    # given
    associative_memory_add(user_id=user.id, content="kept", embedding=axis_embedding(1))
    # when
    with pytest.raises(ApplicationError) as caught:
        memory_context(user_id=user.id, query_embedding=[0.5] * size, top_k=5)
    # then
    assert caught.value.status == 400
    assert caught.value.code == "memory_embedding_invalid"
    assert caught.value.message == (f"The query_embedding must have {EMBEDDING_DIMENSIONS} dimensions, got {size}.")
    assert AssociativeMemory.objects.filter(user_id=user.id).count() == 1


def test_episode_embedding_is_kept_when_given(user):
    # when
    with_vector = episode_record(user_id=user.id, session_id="s", summary="x", embedding=axis_embedding(1, 1))
    without = episode_record(user_id=user.id, session_id="s", summary="y")
    # then
    with_vector.refresh_from_db()
    without.refresh_from_db()
    assert list(with_vector.embedding[:2]) == pytest.approx([2**-0.5, 2**-0.5])
    assert without.embedding is None
