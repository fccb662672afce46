"""Celery tasks of memory: thin wrappers around ``learning.py``."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from .learning import (
    EPISODE_SUMMARISE_TASK,
    LearningFailed,
    episode_learn,
    episodes_pending_requeue,
    patterns_learn,
    users_with_new_episodes,
)

logger = logging.getLogger(__name__)


@shared_task(name=EPISODE_SUMMARISE_TASK, bind=True, acks_late=True, max_retries=None)
def episode_summarise_task(self, episode_id: str) -> bool:
    """Summarise one turn and learn its facts; a model failure is retried with a backoff."""
    try:
        return episode_learn(episode_id=episode_id)
    except LearningFailed as exc:
        if self.request.retries + 1 >= settings.MEMORY_SUMMARY_MAX_ATTEMPTS:
            logger.warning("memory: giving up the summary of episode %s for now", episode_id)
            return False
        raise self.retry(exc=exc, countdown=min(900, 30 * 2**self.request.retries)) from exc


@shared_task(name="memory.learn")
def memory_learn_task() -> dict[str, int]:
    """Periodic (Beat): re-queue lost or failed summaries, derive patterns from new episodes."""
    requeued = episodes_pending_requeue()
    derived = 0
    for user_id in users_with_new_episodes():
        try:
            derived += patterns_learn(user_id=user_id)
        except LearningFailed:
            continue  # this user's turn comes again at the next run
    return {"requeued": requeued, "patterns": derived}
