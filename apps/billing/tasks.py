"""Celery tasks of billing: thin wrappers around services."""

from __future__ import annotations

from celery import shared_task

from .usage_rollup import llm_usage_roll_up


@shared_task(name="billing.llm_usage_roll_up")
def llm_usage_roll_up_task() -> int:
    """Roll yesterday's model-call usage up per day and prune raw rows past retention (Celery beat)."""
    return llm_usage_roll_up().raw_rows_pruned
