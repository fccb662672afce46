"""Celery tasks of core: thin wrappers around services."""

from __future__ import annotations

from celery import shared_task

from .tallies import tallies_nightly_check

TALLIES_CHECK_TASK = "core.tallies_check"


@shared_task(name=TALLIES_CHECK_TASK, ignore_result=True)
def tallies_check_task() -> int:
    """Every tally against its rows (Celery beat, nightly); returns how many still differ."""
    return tallies_nightly_check()
