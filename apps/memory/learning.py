"""Memory that learns from chat turns: episode summaries, associative memories, proactive patterns.

After each turn the assistant calls ``episode_capture``: one insert (the exchange, encrypted, no
summary yet) and, once that commits, a Celery task. The user never waits for what follows:

* ``episode_learn`` (task ``memory.episode_summarise``) asks the learning model for a structured
  digest of the turn — a one-paragraph summary and up to ``MAX_TOPICS`` facts worth recalling —
  embeds them, stores the summary on the episode (dropping the raw exchange) and upserts one
  associative memory per fact (the same fact again reinforces the row instead of duplicating it).
  A model failure leaves the episode pending (no summary, not shown to the model) and is retried,
  by Celery with a backoff and by the periodic sweep, up to ``MEMORY_SUMMARY_MAX_ATTEMPTS``.
* ``patterns_learn`` (the periodic task ``memory.learn``, registered in Beat by a migration) reads
  a user's recent summaries and upserts the habits the model sees, each with a confidence; only
  patterns above ``PATTERN_CONFIDENCE_THRESHOLD`` reach the prompt (``selectors.patterns_active``).

Everything is encrypted with the user's key like any memory, visible and deletable through the
memory API, and kept under the per-user caps of ``retention.py``.

Memory knows no LLM: the assistant registers a ``LearningModel`` (``register_learning_model``)
when it starts, in the web process and the Celery worker alike.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from apps.billing.budgets import llm_budgeted
from apps.billing.error_codes import BillingErrorCode
from apps.billing.metering import LlmPurpose
from apps.core.errors import ApplicationError

from .crypto import lookup_digest, seal, unseal
from .embeddings import validate_embedding
from .models import AssociativeMemory, Episode, MemoryKey, MemoryKind
from .retention import memory_evict_over_cap, user_memory_lock
from .selectors import patterns_all
from .services import PATTERN_MAX_LENGTH, pattern_upsert

logger = logging.getLogger(__name__)

UserId = uuid.UUID | str

EXCHANGE_MESSAGE_CHARS = 4000
EXCHANGE_ANSWER_CHARS = 8000
SUMMARY_MAX_CHARS = 2000
TOPIC_MAX_CHARS = 500
MAX_TOPICS = 3
MAX_PATTERNS_PER_RUN = 5
PENDING_GRACE = timedelta(minutes=5)  # a summary task younger than this is still in flight

# Celery task names (tasks.py registers them): queued by name, so this module never imports the doors.
EPISODE_SUMMARISE_TASK = "memory.episode_summarise"


@dataclass(frozen=True)
class TurnDigest:
    summary: str
    topics: list[str]


@dataclass(frozen=True)
class PatternCandidate:
    description: str
    confidence: float


class LearningFailed(Exception):
    """The learning model failed or answered something unusable; the work is retried later."""


class LearningModel(Protocol):
    def summarise_turn(self, *, message: str, answer: str) -> TurnDigest: ...

    def derive_patterns(self, *, summaries: list[str], known: list[str]) -> list[PatternCandidate]: ...

    def embed(self, *, texts: list[str]) -> list[list[float]]: ...


_model: LearningModel | None = None


def register_learning_model(model: LearningModel | None) -> None:
    global _model
    _model = model


def learning_model() -> LearningModel:
    if _model is None:
        raise LearningFailed("no learning model is registered")
    return _model


# --- after a turn ------------------------------------------------------------------------------


def episode_capture(*, user_id: UserId, session_id: str, message: str, answer: str) -> Episode:
    """Store the turn as a pending episode and queue its summary once the row is committed."""
    exchange = f"User: {message[:EXCHANGE_MESSAGE_CHARS]}\nAssistant: {answer[:EXCHANGE_ANSWER_CHARS]}"
    with transaction.atomic():
        user_memory_lock(user_id=user_id)
        episode = Episode.objects.create(
            user_id=user_id,
            session_id=session_id[:128] or "default",
            exchange_encrypted=seal(user_id=user_id, text=exchange),
        )
        memory_evict_over_cap(user_id=user_id, kind=MemoryKind.EPISODIC)
        transaction.on_commit(lambda: _enqueue(EPISODE_SUMMARISE_TASK, str(episode.id)))
    return episode


def _enqueue(task_name: str, *args: str) -> None:
    # A broker outage must not fail the turn: the periodic sweep picks the episode up later.
    try:
        current_app.signature(task_name, args=list(args)).delay()
    except Exception:
        logger.warning("memory: could not queue %s; the periodic sweep will retry", task_name, exc_info=True)


def _budget_exhausted(exc: Exception) -> bool:
    return isinstance(exc, ApplicationError) and exc.code == BillingErrorCode.LLM_BUDGET_EXHAUSTED


def episode_learn(*, episode_id: uuid.UUID | str) -> bool:
    """Summarise a pending episode and learn its facts; False if there is nothing (left) to do."""
    episode = Episode.objects.filter(id=episode_id, summary_encrypted__isnull=True).first()
    if episode is None or episode.exchange_encrypted is None:
        return False  # already summarised, or deleted by the user meanwhile
    user_id = episode.user_id
    exchange = unseal(user_id=user_id, token=episode.exchange_encrypted)
    message, _, answer = exchange.partition("\nAssistant: ")
    try:
        with llm_budgeted(user_id=user_id, purpose=LlmPurpose.MEMORY_SUMMARY, run_id=str(episode.id)):
            model = learning_model()
            digest = model.summarise_turn(message=message.removeprefix("User: "), answer=answer)
            summary = _clip(digest.summary, SUMMARY_MAX_CHARS)
            if not summary:
                raise LearningFailed("the model returned an empty summary")
            topics = _unique([_clip(topic, TOPIC_MAX_CHARS) for topic in digest.topics])[:MAX_TOPICS]
            vectors = [validate_embedding(v) for v in model.embed(texts=[summary, *topics])]
            if len(vectors) != 1 + len(topics):
                raise LearningFailed("the embedding model returned the wrong number of vectors")
    except Exception as exc:
        if _budget_exhausted(exc):
            # Not an attempt: the episode stays pending and is summarised once the month renews.
            logger.info("memory: summary of episode %s not started: budget_exhausted", episode.id)
            return False
        Episode.objects.filter(id=episode.id).update(summary_attempts=episode.summary_attempts + 1)
        logger.warning("memory: summary of episode %s failed (%s)", episode.id, type(exc).__name__)
        raise LearningFailed(str(exc)) from exc

    with transaction.atomic():
        user_memory_lock(user_id=user_id)
        updated = Episode.objects.filter(id=episode.id, summary_encrypted__isnull=True).update(
            summary_encrypted=seal(user_id=user_id, text=summary),
            embedding=vectors[0],
            exchange_encrypted=None,  # the summary replaces the raw exchange
            summary_attempts=episode.summary_attempts + 1,
            summarised_at=timezone.now(),
            updated_at=timezone.now(),
        )
        if not updated:
            return False
        for topic, vector in zip(topics, vectors[1:], strict=True):
            associative_memory_learn(user_id=user_id, content=topic, embedding=vector)
        memory_evict_over_cap(user_id=user_id, kind=MemoryKind.ASSOCIATIVE)
    return True


def associative_memory_learn(*, user_id: UserId, content: str, embedding: list[float]) -> AssociativeMemory:
    """Insert a learned fact, or reinforce the same fact learned before (fresh text, vector and time)."""
    memory, _ = AssociativeMemory.objects.update_or_create(
        user_id=user_id,
        content_digest=lookup_digest(user_id=user_id, text=_normalise(content)),
        defaults={
            "content_encrypted": seal(user_id=user_id, text=content),
            "embedding": validate_embedding(embedding),
            "updated_at": timezone.now(),
        },
    )
    return memory


def episodes_pending_requeue() -> int:
    """Queue again the summaries that failed or were lost (broker down), below the attempt limit."""
    pending = Episode.objects.filter(
        summary_encrypted__isnull=True,
        exchange_encrypted__isnull=False,
        summary_attempts__lt=settings.MEMORY_SUMMARY_MAX_ATTEMPTS,
        updated_at__lt=timezone.now() - PENDING_GRACE,
    ).values_list("id", flat=True)[:1000]
    ids = [str(episode_id) for episode_id in pending]
    for episode_id in ids:
        _enqueue(EPISODE_SUMMARISE_TASK, episode_id)
    return len(ids)


# --- periodic: patterns --------------------------------------------------------------------------


def users_with_new_episodes() -> list[uuid.UUID]:
    """Users with episodes summarised since their patterns were last derived."""
    since = timezone.now() - timedelta(days=settings.MEMORY_PATTERN_LOOKBACK_DAYS)
    latest = dict(
        Episode.objects.filter(summarised_at__gte=since)
        .values("user_id")
        .annotate(last=Max("summarised_at"))
        .values_list("user_id", "last")
    )
    derived = dict(MemoryKey.objects.filter(user_id__in=list(latest)).values_list("user_id", "patterns_derived_at"))
    return [user_id for user_id, last in latest.items() if derived.get(user_id) is None or last > derived[user_id]]


def patterns_learn(*, user_id: UserId) -> int:
    """Derive habits from the user's recent summaries; returns how many patterns were upserted."""
    started = timezone.now()
    since = started - timedelta(days=settings.MEMORY_PATTERN_LOOKBACK_DAYS)
    rows = (
        Episode.objects.filter(user_id=user_id, summary_encrypted__isnull=False, created_at__gte=since)
        .order_by("-created_at")
        .values_list("summary_encrypted", flat=True)[: settings.MEMORY_PATTERN_EPISODES]
    )
    summaries = [unseal(user_id=user_id, token=token) for token in rows if token is not None]
    if not summaries:
        return 0
    known = [pattern.description for pattern in patterns_all(user_id=user_id)]
    try:
        with llm_budgeted(user_id=user_id, purpose=LlmPurpose.MEMORY_SUMMARY):
            candidates = learning_model().derive_patterns(summaries=summaries, known=known)
    except Exception as exc:
        if _budget_exhausted(exc):
            logger.info("memory: patterns of %s not derived: budget_exhausted", user_id)
            return 0
        logger.warning("memory: pattern derivation for %s failed (%s)", user_id, type(exc).__name__)
        raise LearningFailed(str(exc)) from exc
    upserted = 0
    with transaction.atomic():
        user_memory_lock(user_id=user_id)
        for candidate in candidates[:MAX_PATTERNS_PER_RUN]:
            description = _clip(candidate.description, PATTERN_MAX_LENGTH)
            confidence = candidate.confidence
            if not description or not isinstance(confidence, int | float) or not 0.0 <= confidence <= 1.0:
                continue  # one bad candidate does not spoil the others
            pattern_upsert(user_id=user_id, description=description, confidence=float(confidence))
            upserted += 1
        memory_evict_over_cap(user_id=user_id, kind=MemoryKind.PROACTIVE)
        MemoryKey.objects.filter(user_id=user_id).update(patterns_derived_at=started)
    return upserted


def _clip(text: object, limit: int) -> str:
    return " ".join(str(text or "").split())[:limit]


def _normalise(text: str) -> str:
    return " ".join(text.lower().split())


def _unique(items: list[str]) -> list[str]:
    seen: set[str] = set()
    kept = []
    for item in items:
        if item and _normalise(item) not in seen:
            seen.add(_normalise(item))
            kept.append(item)
    return kept
