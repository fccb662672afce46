"""The daily roll-up of metered model calls and the pruning of raw rows past their retention.

Each finished day (UTC) still held as raw rows is summed per user, model and purpose into
``LlmUsageDaily`` (recomputed, so running it twice changes nothing); raw rows older than
``LLM_USAGE_RETENTION_DAYS`` go only once their day is rolled up. Lapsed holds go too.
"""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from .models import LlmReservation, LlmUsage, LlmUsageDaily


class RollUpResult(NamedTuple):
    days_rolled_up: int
    raw_rows_pruned: int
    holds_expired: int


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


def llm_usage_roll_up(*, now: dt.datetime | None = None) -> RollUpResult:
    """Roll every finished day up, then prune raw rows and holds past their time."""
    now = now or timezone.now()
    today = now.astimezone(dt.UTC).date()
    groups = (
        LlmUsage.objects.filter(created_at__lt=_midnight(today))
        .annotate(day=TruncDate("created_at", tzinfo=dt.UTC))
        .values("user_id", "day", "model", "purpose")
        .annotate(
            calls=Count("id"),
            prompt=Sum("prompt_tokens"),
            completion=Sum("completion_tokens"),
            cached=Sum("cached_tokens"),
        )
    )
    rows = [
        LlmUsageDaily(
            user_id=group["user_id"],
            day=group["day"],
            model=group["model"],
            purpose=group["purpose"],
            calls=group["calls"],
            prompt_tokens=group["prompt"] or 0,
            completion_tokens=group["completion"] or 0,
            cached_tokens=group["cached"] or 0,
        )
        for group in groups
    ]
    cutoff = _midnight(today - dt.timedelta(days=settings.LLM_USAGE_RETENTION_DAYS))
    with transaction.atomic():
        LlmUsageDaily.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["user", "day", "model", "purpose"],
            update_fields=["calls", "prompt_tokens", "completion_tokens", "cached_tokens"],
        )
        # Only days below today were rolled up above, and the cutoff is at most today.
        pruned, _ = LlmUsage.objects.filter(created_at__lt=min(cutoff, _midnight(today))).delete()
    lapsed = now - dt.timedelta(seconds=settings.LLM_BUDGET_RESERVATION_TTL)
    expired, _ = LlmReservation.objects.filter(created_at__lt=lapsed).delete()
    return RollUpResult(
        days_rolled_up=len({(r.user_id, r.day) for r in rows}), raw_rows_pruned=pruned, holds_expired=expired
    )
