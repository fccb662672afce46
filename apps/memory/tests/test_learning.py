"""Memory that learns: pending episodes, summaries and learned facts, patterns, caps and eviction.

The learning model is the boundary to the LLM; here it is a small deterministic implementation
of ``LearningModel`` (the real one, on the scripted OpenAI server, is exercised end to end in
``apps/assistant/tests/test_memory_e2e.py``).
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.memory.learning import (
    PENDING_GRACE,
    LearningFailed,
    PatternCandidate,
    TurnDigest,
    episode_capture,
    episode_learn,
    episodes_pending_requeue,
    learning_model,
    patterns_learn,
    register_learning_model,
    users_with_new_episodes,
)
from apps.memory.models import AssociativeMemory, Episode, ProactivePattern
from apps.memory.selectors import associative_memory_search, episodes_recent, memory_context, patterns_active
from apps.memory.services import episode_record, pattern_upsert

pytestmark = pytest.mark.django_db


class StubLearningModel:
    """Answers from a script: digests per message, patterns, and word-hashed embeddings."""

    def __init__(self) -> None:
        self.digests: dict[str, TurnDigest] = {}
        self.patterns: list[PatternCandidate] = []
        self.fail = False
        self.dimensions = 1536

    def summarise_turn(self, *, message: str, answer: str) -> TurnDigest:
        if self.fail:
            raise RuntimeError("model down")
        return self.digests[message]

    def derive_patterns(self, *, summaries: list[str], known: list[str]) -> list[PatternCandidate]:
        return self.patterns

    def embed(self, *, texts: list[str]) -> list[list[float]]:
        vectors = []
        for text in texts:
            index = int(hashlib.sha256(text.encode()).hexdigest(), 16) % 1000
            vector = [0.0] * self.dimensions
            vector[index % self.dimensions] = 1.0
            vectors.append(vector)
        return vectors


@pytest.fixture
def model():
    saved = learning_model()
    stub = StubLearningModel()
    register_learning_model(stub)
    yield stub
    register_learning_model(saved)


def capture(user, message: str, answer: str = "ok") -> Episode:
    # on_commit callbacks do not run inside the test transaction: nothing is queued here
    return episode_capture(user_id=user.id, session_id="s1", message=message, answer=answer)


def test_a_captured_turn_is_pending_encrypted_and_not_shown_to_the_model(user, model):
    # when a turn is captured
    episode = capture(user, "when is the launch?", "Friday")

    # then it waits for its summary, its exchange is ciphertext, and the prompt does not show it
    assert episode.summary_encrypted is None
    with connection.cursor() as cursor:
        cursor.execute("SELECT exchange_encrypted FROM memory_episode WHERE id = %s", [episode.id])
        assert b"launch" not in bytes(cursor.fetchone()[0])
    assert episodes_recent(user_id=user.id) == []


def test_learning_writes_the_summary_and_upserts_the_facts(user, model):
    # given a captured turn and the model's digest of it
    episode = capture(user, "when is the launch?", "Friday")
    model.digests["when is the launch?"] = TurnDigest(
        summary="The user asked about the launch; it is on Friday.",
        topics=["The product launch is on Friday", "the product launch is on friday", "Acme is the client"],
    )

    # when the task body runs
    assert episode_learn(episode_id=episode.id) is True

    # then the summary replaces the exchange and each distinct fact is one associative memory
    episode.refresh_from_db()
    assert episode.exchange_encrypted is None
    assert episode.embedding is not None
    assert [e.summary for e in episodes_recent(user_id=user.id)] == [
        "The user asked about the launch; it is on Friday."
    ]
    assert AssociativeMemory.objects.filter(user=user).count() == 2
    # and running it again (a duplicate delivery) changes nothing
    assert episode_learn(episode_id=episode.id) is False
    assert AssociativeMemory.objects.filter(user=user).count() == 2


def test_the_same_fact_learned_again_reinforces_instead_of_duplicating(user, model):
    for message in ("first", "second"):
        episode = capture(user, message)
        model.digests[message] = TurnDigest(summary=f"summary {message}", topics=["Prefers morning meetings"])
        episode_learn(episode_id=episode.id)

    assert AssociativeMemory.objects.filter(user=user).count() == 1


def test_a_failing_model_leaves_the_episode_pending_and_counts_the_attempt(user, model):
    # given a model that is down
    episode = capture(user, "hello")
    model.fail = True

    # when the summary is attempted
    with pytest.raises(LearningFailed):
        episode_learn(episode_id=episode.id)

    # then nothing was half-written and the episode is retried later
    episode.refresh_from_db()
    assert episode.summary_encrypted is None
    assert episode.exchange_encrypted is not None
    assert episode.summary_attempts == 1
    assert AssociativeMemory.objects.count() == 0

    # and a later attempt succeeds
    model.fail = False
    model.digests["hello"] = TurnDigest(summary="The user said hello.", topics=[])
    assert episode_learn(episode_id=episode.id) is True


def test_a_wrong_sized_embedding_from_the_model_writes_nothing(user, model):
    episode = capture(user, "hi")
    model.digests["hi"] = TurnDigest(summary="Greeting.", topics=["A fact"])
    model.dimensions = 12

    with pytest.raises(LearningFailed):
        episode_learn(episode_id=episode.id)

    episode.refresh_from_db()
    assert episode.summary_encrypted is None
    assert AssociativeMemory.objects.count() == 0


def test_an_episode_deleted_before_its_summary_is_simply_skipped(user, model):
    episode = capture(user, "forget me")
    Episode.objects.filter(id=episode.id).delete()

    assert episode_learn(episode_id=episode.id) is False


def test_associative_cap_evicts_the_least_recently_reinforced(user, model, settings):
    # given a cap of 2 learned facts
    settings.MEMORY_ASSOCIATIVE_MAX_PER_USER = 2
    for message, fact in (("m1", "fact one"), ("m2", "fact two"), ("m3", "fact one"), ("m4", "fact three")):
        episode = capture(user, message)
        model.digests[message] = TurnDigest(summary=f"summary {message}", topics=[fact])
        # when each turn is learned (fact one is reinforced by m3 before fact three arrives)
        episode_learn(episode_id=episode.id)

    # then fact two, the least recently reinforced, was evicted; the cap holds
    hits = associative_memory_search(user_id=user.id, query_embedding=model.embed(texts=["x"])[0], top_k=10)
    assert sorted(hit.content for hit in hits) == ["fact one", "fact three"]


def test_episode_cap_evicts_the_oldest(user, model, settings):
    settings.MEMORY_EPISODES_MAX_PER_USER = 2
    first = capture(user, "one")
    capture(user, "two")
    capture(user, "three")

    assert Episode.objects.filter(user=user).count() == 2
    assert not Episode.objects.filter(id=first.id).exists()


def test_patterns_are_derived_from_recent_summaries_and_only_confident_ones_reach_the_prompt(user, model):
    # given summarised episodes and the model's reading of them
    episode_record(user_id=user.id, session_id="s", summary="Planned the week on Monday morning.")
    episode_record(user_id=user.id, session_id="s", summary="Planned the week again on Monday.")
    model.patterns = [
        PatternCandidate(description="Plans the week on Monday mornings", confidence=0.85),
        PatternCandidate(description="Might prefer tea", confidence=0.4),
        PatternCandidate(description="", confidence=0.9),  # unusable, skipped
    ]
    assert users_with_new_episodes() == [user.id]

    # when the periodic derivation runs
    assert patterns_learn(user_id=user.id) == 2

    # then both are stored, only the confident one is active, and nothing is new until more episodes come
    assert ProactivePattern.objects.filter(user=user).count() == 2
    assert [p.description for p in patterns_active(user_id=user.id)] == ["Plans the week on Monday mornings"]
    recalled = memory_context(user_id=user.id, query_embedding=None).patterns
    assert [p.description for p in recalled] == ["Plans the week on Monday mornings"]
    assert users_with_new_episodes() == []


def test_pattern_cap_evicts_the_least_confident(user, model, settings):
    settings.MEMORY_PATTERNS_MAX_PER_USER = 2
    pattern_upsert(user_id=user.id, description="weak", confidence=0.2)
    pattern_upsert(user_id=user.id, description="strong", confidence=0.9)
    episode_record(user_id=user.id, session_id="s", summary="Something happened.")
    model.patterns = [PatternCandidate(description="medium", confidence=0.7)]

    patterns_learn(user_id=user.id)

    assert sorted(ProactivePattern.objects.filter(user=user).values_list("confidence", flat=True)) == [0.7, 0.9]


def test_memory_api_lists_a_pending_episode_and_deletes_it(user, auth_client, model):
    episode = capture(user, "private question")

    listed = auth_client.get("/api/v1/memory/episodic").json()
    item = next(i for i in (listed.get("results") or listed.get("items") or listed) if i["id"] == str(episode.id))
    assert item["summary"] is None
    assert item["pending"] is True

    assert auth_client.delete(f"/api/v1/memory/episodic/{episode.id}").status_code in (200, 204)
    assert not Episode.objects.filter(id=episode.id).exists()


def test_with_no_budget_left_a_summary_does_not_start_and_stays_pending_without_an_attempt(user, model, caplog):
    from apps.billing.budgets import llm_budget_override_set

    # given a pending turn and a spent budget
    episode = capture(user, "hi")
    model.digests["hi"] = TurnDigest(summary="Greeting.", topics=["A fact"])
    llm_budget_override_set(user=user, monthly_tokens=0, actor=None)

    # when
    learned = episode_learn(episode_id=episode.id)

    # then nothing was summarised, the episode waits for the next month, and the log says why
    assert learned is False
    episode.refresh_from_db()
    assert episode.summary_encrypted is None
    assert episode.summary_attempts == 0
    assert AssociativeMemory.objects.count() == 0
    assert "budget_exhausted" in caplog.text


def test_a_committed_turn_queues_its_summary_which_the_worker_runs(
    user, model, celery_eager, django_capture_on_commit_callbacks
):
    # given the model's digest of the turn
    model.digests["when is the launch?"] = TurnDigest(summary="The launch is on Friday.", topics=["Launch on Friday"])

    # when the turn is captured and its transaction commits
    with django_capture_on_commit_callbacks(execute=True):
        episode = capture(user, "when is the launch?", "Friday")

    # then the queued task summarised it
    episode.refresh_from_db()
    assert episode.exchange_encrypted is None
    assert [e.summary for e in episodes_recent(user_id=user.id)] == ["The launch is on Friday."]
    assert AssociativeMemory.objects.filter(user=user).count() == 1


def test_the_periodic_sweep_queues_a_lost_summary_again(user, model, celery_eager):
    # given a turn whose summary task was lost (never queued: its commit callback did not run)
    episode = capture(user, "lost turn")
    model.digests["lost turn"] = TurnDigest(summary="A turn that was lost.", topics=[])
    Episode.objects.filter(id=episode.id).update(updated_at=timezone.now() - PENDING_GRACE - timedelta(seconds=1))

    # when the sweep runs
    assert episodes_pending_requeue() == 1

    # then the task it queued summarised the turn
    episode.refresh_from_db()
    assert episode.summary_encrypted is not None
    assert episodes_pending_requeue() == 0
