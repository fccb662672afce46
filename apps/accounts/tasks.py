"""Celery tasks of accounts: thin wrappers around ``deletion.py``."""

from __future__ import annotations

from celery import shared_task

from .deletion import ACCOUNT_ERASE_TASK, account_erase


@shared_task(name=ACCOUNT_ERASE_TASK, bind=True, acks_late=True, max_retries=None)
def account_erase_task(self, user_id: str) -> bool:
    """Erase a deleted account; retried with a backoff until every eraser succeeded."""
    try:
        return account_erase(user_id=user_id)
    except Exception as exc:
        raise self.retry(exc=exc, countdown=min(3600, 30 * 2**self.request.retries)) from exc
