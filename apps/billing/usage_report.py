"""What a user's model calls used in a month: totals, by purpose and by day, against their budget.

Days already rolled up are read from ``LlmUsageDaily`` (their raw rows may be pruned); the
others from the raw rows.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from django.db.models import Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from apps.core.errors import ApplicationError, CoreErrorCode

from .budgets import llm_budget_of, period_resets_at
from .metering import period_of
from .models import LlmUsage, LlmUsageDaily

_PERIOD = re.compile(r"^(\d{4})-(\d{2})$")
_FIELDS = ("prompt", "completion", "cached")


def period_parse(value: Any) -> dt.date:
    """``YYYY-MM`` as the month's first day; the current month when empty; 400 otherwise."""
    if value in (None, ""):
        return period_of(timezone.now())
    match = _PERIOD.match(str(value))
    if match is None or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 2000:
        reason = "A month as YYYY-MM, e.g. 2026-03."
        raise ApplicationError(
            CoreErrorCode.VALIDATION_ERROR, f"period: {reason}", status=400, fields={"period": [reason]}
        )
    return dt.date(int(match.group(1)), int(match.group(2)), 1)


def _tokens(prompt: int = 0, completion: int = 0, cached: int = 0) -> dict[str, int]:
    return {"prompt": prompt, "completion": completion, "cached": cached, "total": prompt + completion}


def _add(into: dict[str, int], prompt: int, completion: int, cached: int) -> None:
    into["prompt"] += prompt
    into["completion"] += completion
    into["cached"] += cached
    into["total"] += prompt + completion


def llm_usage_rows(*, user_id: Any, period: dt.date) -> list[tuple[dt.date, str, str, int, int, int]]:
    """(day, model, purpose, prompt, completion, cached) of the user's month, one per day, model and purpose."""
    end = period_resets_at(period).date()
    rolled = list(
        LlmUsageDaily.objects.filter(user_id=user_id, day__gte=period, day__lt=end).values_list(
            "day", "model", "purpose", "prompt_tokens", "completion_tokens", "cached_tokens"
        )
    )
    rolled_days = {row[0] for row in rolled}
    raw = (
        LlmUsage.objects.filter(
            user_id=user_id,
            created_at__gte=dt.datetime.combine(period, dt.time.min, tzinfo=dt.UTC),
            created_at__lt=period_resets_at(period),
        )
        .annotate(day=TruncDate("created_at", tzinfo=dt.UTC))
        .values("day", "model", "purpose")
        .annotate(prompt=Sum("prompt_tokens"), completion=Sum("completion_tokens"), cached=Sum("cached_tokens"))
    )
    fresh = [
        (row["day"], row["model"], row["purpose"], row["prompt"] or 0, row["completion"] or 0, row["cached"] or 0)
        for row in raw
        if row["day"] not in rolled_days
    ]
    return [*rolled, *fresh]


def llm_usage_report(*, user: Any, period: dt.date) -> dict[str, Any]:
    """The caller's month: ``{period, budget, used, remaining, resets_at, by_purpose, by_day}``."""
    used = _tokens()
    by_purpose: dict[str, dict[str, int]] = {}
    by_day: dict[dt.date, dict[str, int]] = {}
    for day, _model, purpose, prompt, completion, cached in llm_usage_rows(user_id=user.pk, period=period):
        _add(used, prompt, completion, cached)
        _add(by_purpose.setdefault(purpose, _tokens()), prompt, completion, cached)
        _add(by_day.setdefault(day, _tokens()), prompt, completion, cached)
    budget = llm_budget_of(user)
    return {
        "period": f"{period:%Y-%m}",
        "budget": budget,
        "used": used,
        "remaining": None if budget is None else max(0, budget - used["total"]),
        "resets_at": period_resets_at(period),
        "by_purpose": dict(sorted(by_purpose.items())),
        "by_day": [{"day": day, **tokens} for day, tokens in sorted(by_day.items())],
    }
