"""Memory services and the enrichment selector: what the assistant codes against."""

from __future__ import annotations

import datetime as dt

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.utils import timezone

from apps.core.errors import ApplicationError, NotFoundError
from apps.memory.models import AssociativeMemory, CoreMemory, Episode, MemoryKind, ProactivePattern
from apps.memory.selectors import (
    AssociativeHit,
    PatternHit,
    amemory_context,
    memory_context,
    memory_context_unsearched,
    memory_export,
)
from apps.memory.services import (
    associative_memory_add,
    core_memory_delete,
    core_memory_set,
    episode_record,
    memory_delete_all,
    memory_item_delete,
    pattern_upsert,
)

from .conftest import axis_embedding

pytestmark = pytest.mark.django_db


def test_core_memory_set_replaces_the_value_of_the_same_key(user):
    # given
    core_memory_set(user_id=user.id, key="timezone", value="UTC")
    # when
    core_memory_set(user_id=user.id, key="timezone", value="Europe/Paris")
    core_memory_set(user_id=user.id, key="language", value="fr")
    # then
    assert CoreMemory.objects.filter(user=user).count() == 2
    assert memory_context(user_id=user.id, query_embedding=None).core == {"language": "fr", "timezone": "Europe/Paris"}


def test_core_memory_delete_forgets_only_that_key(user):
    # given
    core_memory_set(user_id=user.id, key="timezone", value="UTC")
    core_memory_set(user_id=user.id, key="language", value="fr")
    # when
    core_memory_delete(user_id=user.id, key="timezone")
    core_memory_delete(user_id=user.id, key="never-set")
    # then
    assert memory_context(user_id=user.id, query_embedding=None).core == {"language": "fr"}


def test_same_core_key_for_two_users_is_two_rows_with_different_digests(make_user):
    # given
    alice, bob = make_user(), make_user()
    # when
    core_memory_set(user_id=alice.id, key="timezone", value="UTC")
    core_memory_set(user_id=bob.id, key="timezone", value="Asia/Tokyo")
    # then: the HMAC is keyed per user, so equal keys do not link users in a dump
    digests = set(CoreMemory.objects.values_list("key_digest", flat=True))
    assert len({bytes(d) for d in digests}) == 2
    assert memory_context(user_id=alice.id, query_embedding=None).core == {"timezone": "UTC"}
    assert memory_context(user_id=bob.id, query_embedding=None).core == {"timezone": "Asia/Tokyo"}


def test_enrichment_returns_top_k_associative_by_cosine_similarity(user):
    # given: three memories at known angles from the query direction (1, 0)
    associative_memory_add(user_id=user.id, content="far", embedding=axis_embedding(0, 1))
    associative_memory_add(
        user_id=user.id, content="closest", embedding=axis_embedding(1, 0.1), entity_type="task", entity_id="t-1"
    )
    associative_memory_add(user_id=user.id, content="middle", embedding=axis_embedding(1, 1))
    # when
    context = memory_context(user_id=user.id, query_embedding=axis_embedding(1, 0), top_k=2)
    # then
    assert [hit.content for hit in context.associative] == ["closest", "middle"]
    first = context.associative[0]
    assert isinstance(first, AssociativeHit)
    assert (first.entity_type, first.entity_id) == ("task", "t-1")
    assert first.score == pytest.approx(1 / (1 + 0.01) ** 0.5, abs=1e-5)
    assert context.associative[1].score == pytest.approx(2**-0.5, abs=1e-5)


def test_enrichment_without_query_embedding_skips_associative_but_keeps_the_rest(user):
    # given
    associative_memory_add(user_id=user.id, content="a fact", embedding=axis_embedding(1))
    core_memory_set(user_id=user.id, key="name", value="Alice")
    # when
    context = memory_context(user_id=user.id, query_embedding=None)
    # then
    assert context.associative == []
    assert context.core == {"name": "Alice"}


def test_context_unsearched_is_the_context_without_a_query_and_whether_the_user_has_anything_to_search(make_user):
    # given: bob has an associative memory, alice core memory, a pattern and an episode only
    alice, bob = make_user(), make_user()
    associative_memory_add(user_id=bob.id, content="bob's fact", embedding=axis_embedding(1))
    core_memory_set(user_id=alice.id, key="name", value="Alice")
    pattern_upsert(user_id=alice.id, description="plans on Monday", confidence=0.9)
    episode_record(user_id=alice.id, session_id="s", summary="talked")
    # when
    alice_context, alice_searchable = memory_context_unsearched(user_id=alice.id)
    bob_context, bob_searchable = memory_context_unsearched(user_id=bob.id)
    # then
    assert (alice_searchable, bob_searchable) == (False, True)
    assert alice_context == memory_context(user_id=alice.id, query_embedding=None)
    assert alice_context.core == {"name": "Alice"}
    assert len(alice_context.episodes) == 1
    assert bob_context.is_empty()


def test_enrichment_returns_the_most_recent_episodes_newest_first(user):
    # given: six episodes one minute apart
    base = timezone.now() - dt.timedelta(hours=1)
    for index in range(6):
        episode = episode_record(user_id=user.id, session_id=f"s{index}", summary=f"talked about {index}")
        Episode.objects.filter(id=episode.id).update(created_at=base + dt.timedelta(minutes=index))
    # when
    context = memory_context(user_id=user.id, query_embedding=None, recent_episodes=3)
    # then
    assert [(e.session_id, e.summary) for e in context.episodes] == [
        ("s5", "talked about 5"),
        ("s4", "talked about 4"),
        ("s3", "talked about 3"),
    ]


def test_enrichment_uses_only_patterns_strictly_above_0_6(user):
    # given
    pattern_upsert(user_id=user.id, description="plans on Monday mornings", confidence=0.9)
    pattern_upsert(user_id=user.id, description="exactly at the threshold", confidence=0.6)
    pattern_upsert(user_id=user.id, description="rarely seen", confidence=0.2)
    pattern_upsert(user_id=user.id, description="reviews notes on Friday", confidence=0.61)
    # when
    patterns = memory_context(user_id=user.id, query_embedding=None).patterns
    # then
    assert patterns == [
        PatternHit(description="plans on Monday mornings", confidence=0.9),
        PatternHit(description="reviews notes on Friday", confidence=0.61),
    ]


def test_pattern_upsert_updates_confidence_of_the_same_description(user):
    # given
    first = pattern_upsert(user_id=user.id, description="plans on Monday", confidence=0.5)
    # when
    second = pattern_upsert(user_id=user.id, description="plans on Monday", confidence=0.8)
    # then
    assert first.id == second.id
    assert ProactivePattern.objects.get(id=first.id).confidence == 0.8


def test_enrichment_never_returns_another_users_memory(make_user):
    # given: bob has a memory identical to the query, alice has a distant one
    alice, bob = make_user(), make_user()
    associative_memory_add(user_id=bob.id, content="bob's secret", embedding=axis_embedding(1))
    core_memory_set(user_id=bob.id, key="bank", value="bob's bank")
    episode_record(user_id=bob.id, session_id="bob-session", summary="bob's chat")
    pattern_upsert(user_id=bob.id, description="bob's habit", confidence=0.99)
    associative_memory_add(user_id=alice.id, content="alice's fact", embedding=axis_embedding(0, 1))
    # when
    context = memory_context(user_id=alice.id, query_embedding=axis_embedding(1), top_k=10)
    # then
    assert [hit.content for hit in context.associative] == ["alice's fact"]
    assert context.core == {}
    assert context.episodes == []
    assert context.patterns == []


@pytest.mark.parametrize(
    "embedding",
    [
        [0.1] * 1535,
        [0.1] * 1537,
        [],
        [0.0] * 1536,
        [float("nan")] + [0.1] * 1535,
        [0.1] * 1535 + [float("inf")],
        [1e300] + [0.1] * 1535,
        [10**400] + [0.1] * 1535,
        ["x"] * 1536,
        [True] + [0.1] * 1535,
        [0.1] * 1535 + [None],
        "not a list",
    ],
    ids=[
        "short",
        "long",
        "empty",
        "zero",
        "nan",
        "inf",
        "beyond-float32",
        "huge-int",
        "strings",
        "bool",
        "none",
        "string",
    ],
)
def test_bad_embeddings_are_rejected_with_a_clear_error_and_nothing_is_stored(user, embedding):
    # when
    with pytest.raises(ApplicationError) as caught:
        associative_memory_add(user_id=user.id, content="x", embedding=embedding)
    # then
    assert caught.value.status == 400
    assert caught.value.code == "memory_embedding_invalid"
    assert "embedding" in caught.value.fields
    assert not AssociativeMemory.objects.exists()


class _Float(float):
    pass


@pytest.mark.parametrize(
    "embedding",
    [[1] + [0] * 1535, tuple([1.0] + [0.0] * 1535), [_Float(1.0)] + [0.0] * 1535, [1.0] + [0.0] * 1535],
    ids=["ints", "tuple", "float-subclass", "floats"],
)
def test_any_sequence_of_finite_numbers_is_one_embedding(user, embedding):
    # when
    associative_memory_add(user_id=user.id, content="x", embedding=embedding)
    context = memory_context(user_id=user.id, query_embedding=embedding, top_k=1)
    # then: stored and searched as the same plain vector
    stored = AssociativeMemory.objects.get(user=user).embedding
    assert [float(x) for x in stored] == [1.0] + [0.0] * 1535
    assert [hit.content for hit in context.associative] == ["x"]
    assert context.associative[0].score == pytest.approx(1.0)


def test_bad_query_embedding_is_rejected(user):
    with pytest.raises(ApplicationError) as caught:
        memory_context(user_id=user.id, query_embedding=[1.0] * 3)
    assert caught.value.code == "memory_embedding_invalid"
    assert "1536" in caught.value.message


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (lambda uid: core_memory_set(user_id=uid, key="", value="v"), "memory_content_invalid"),
        (lambda uid: core_memory_set(user_id=uid, key="k", value="v" * 5000), "memory_content_invalid"),
        (lambda uid: episode_record(user_id=uid, session_id="s", summary="   "), "memory_content_invalid"),
        (lambda uid: pattern_upsert(user_id=uid, description="d", confidence=1.5), "memory_confidence_invalid"),
        (
            lambda uid: pattern_upsert(user_id=uid, description="d", confidence=float("nan")),
            "memory_confidence_invalid",
        ),
        (lambda uid: pattern_upsert(user_id=uid, description="d", confidence=10**400), "memory_confidence_invalid"),
        (lambda uid: memory_context(user_id=uid, query_embedding=None, top_k=-1), "memory_limit_invalid"),
        (lambda uid: memory_context(user_id=uid, query_embedding=None, top_k=10**400), "memory_limit_invalid"),
        (lambda uid: memory_context(user_id=uid, query_embedding=None, recent_episodes=10_000), "memory_limit_invalid"),
    ],
    ids=[
        "empty-key",
        "long-value",
        "blank-summary",
        "confidence>1",
        "confidence-nan",
        "confidence-huge-int",
        "top_k<0",
        "top_k-huge-int",
        "episodes-huge",
    ],
)
def test_bad_input_is_an_application_error(user, call, code):
    with pytest.raises(ApplicationError) as caught:
        call(user.id)
    assert (caught.value.status, caught.value.code) == (400, code)


def test_unknown_or_foreign_item_id_is_not_found(make_user):
    # given
    alice, bob = make_user(), make_user()
    bobs = associative_memory_add(user_id=bob.id, content="bob's", embedding=axis_embedding(1))
    # when / then
    with pytest.raises(NotFoundError):
        memory_item_delete(user_id=alice.id, kind=MemoryKind.ASSOCIATIVE, item_id=bobs.id)
    with pytest.raises(NotFoundError):
        memory_item_delete(user_id=alice.id, kind=MemoryKind.ASSOCIATIVE, item_id="not-a-uuid")
    assert AssociativeMemory.objects.filter(id=bobs.id).exists()


def test_writing_memory_for_a_missing_user_is_not_found():
    with pytest.raises(NotFoundError):
        core_memory_set(user_id="00000000-0000-0000-0000-000000000000", key="k", value="v")


def test_memory_delete_all_removes_every_row_of_that_user_only(make_user):
    # given
    alice, bob = make_user(), make_user()
    for owner in (alice, bob):
        core_memory_set(user_id=owner.id, key="k", value="v")
        associative_memory_add(user_id=owner.id, content="c", embedding=axis_embedding(1))
        episode_record(user_id=owner.id, session_id="s", summary="sum", embedding=axis_embedding(1))
        pattern_upsert(user_id=owner.id, description="d", confidence=0.7)
    # when
    deleted = memory_delete_all(user_id=alice.id)
    # then
    assert deleted == 4
    for model in (CoreMemory, AssociativeMemory, Episode, ProactivePattern):
        assert not model.objects.filter(user=alice).exists()
        assert model.objects.filter(user=bob).count() == 1


def test_export_holds_everything_decrypted(user):
    # given
    core_memory_set(user_id=user.id, key="timezone", value="UTC")
    associative_memory_add(
        user_id=user.id, content="likes tea", embedding=axis_embedding(1), entity_type="note", entity_id="n1"
    )
    episode_record(user_id=user.id, session_id="s1", summary="planned the week")
    pattern_upsert(user_id=user.id, description="plans on Monday", confidence=0.4)
    # when
    export = memory_export(user_id=user.id)
    # then
    assert (export["core"][0]["key"], export["core"][0]["value"]) == ("timezone", "UTC")
    assert {k: export["associative"][0][k] for k in ("content", "entity_type", "entity_id")} == {
        "content": "likes tea",
        "entity_type": "note",
        "entity_id": "n1",
    }
    assert "embedding" not in export["associative"][0]
    assert export["episodic"][0]["summary"] == "planned the week"
    assert export["proactive"][0]["description"] == "plans on Monday"
    assert export["proactive"][0]["active"] is False


@pytest.mark.django_db(transaction=True)
async def test_async_wrapper_returns_the_same_context(user):
    # given

    await sync_to_async(core_memory_set)(user_id=user.id, key="timezone", value="UTC")
    # when
    context = await amemory_context(user_id=user.id, query_embedding=axis_embedding(1))
    # then
    assert context.core == {"timezone": "UTC"}
    # the worker thread's connection would otherwise block dropping the test database
    await sync_to_async(connections.close_all)()


@pytest.mark.parametrize("size", [0, 12, 1535, 3072])
def test_a_query_vector_of_the_wrong_size_is_a_clear_400(user, size):
    from apps.core.errors import ApplicationError
    from apps.memory.selectors import associative_memory_search

    with pytest.raises(ApplicationError) as error:
        associative_memory_search(user_id=user.id, query_embedding=[0.5] * size, top_k=5)

    assert error.value.status == 400
    assert error.value.code == "memory_embedding_invalid"
    assert "query_embedding" in error.value.fields
