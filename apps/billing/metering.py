"""Metering of model calls: whom a call is for (an attribution the door sets around its work) and
the record of the tokens the provider reported for it, exactly once per call; never the content.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from enum import StrEnum
from typing import Any, NamedTuple

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from apps.core import metrics

from .models import LlmBudgetPeriod, LlmUsage

logger = logging.getLogger(__name__)


class LlmPurpose(StrEnum):
    """What a model call was for; the budget counts them all, the usage view breaks them down."""

    CHAT = "chat"
    FLOATING = "floating"
    SUBAGENT = "subagent"
    AGENT_EXTRACTION = "agent_extraction"
    JOURNEY = "journey"
    MEMORY_SUMMARY = "memory_summary"
    EMBEDDING = "embedding"


class LlmAttribution(NamedTuple):
    """The user and purpose the model calls of the current work are charged to."""

    user_id: Any
    purpose: LlmPurpose
    run_id: str = ""
    tier: str = ""


class LlmCallUsage(NamedTuple):
    prompt: int
    completion: int
    cached: int

    @property
    def total(self) -> int:
        return self.prompt + self.completion


class LlmCallRecord(NamedTuple):
    call_id: str
    attribution: LlmAttribution
    model: str
    usage: LlmCallUsage
    estimated: bool = False


class DeferredRecords:
    """Calls of latency-sensitive work recorded when it ends, in one trip to the database, instead
    of on its way (e.g. before a chat turn's first token); open until then."""

    def __init__(self) -> None:
        self.records: list[LlmCallRecord] = []
        self.open = True
        # Calls still streaming: each settles (a record, or None when already settled) on demand.
        self.in_flight: list[Callable[[], LlmCallRecord | None]] = []

    def close(self) -> None:
        """The work ended: settle the calls still streaming, from what they read, and hold no more.

        A cancelled chat turn leaves the generators reading its stream to the garbage collector,
        which may close them much later than the turn's end, or after the records were stored; so
        the turn settles them itself, on its own thread, before they are stored.
        """
        for settle in self.in_flight:
            record = settle()
            if record is not None:
                self.records.append(record)
        self.in_flight.clear()
        self.open = False


_attribution: ContextVar[LlmAttribution | None] = ContextVar("llm_attribution", default=None)
_deferred: ContextVar[DeferredRecords | None] = ContextVar("llm_deferred_records", default=None)


@contextlib.contextmanager
def llm_attribution(attribution: LlmAttribution) -> Iterator[LlmAttribution]:
    """Charge the model calls made inside (tasks and threads started inside inherit it) to ``attribution``."""
    token = _attribution.set(attribution)
    try:
        yield attribution
    finally:
        _attribution.reset(token)


@contextlib.contextmanager
def llm_records_deferred() -> Iterator[DeferredRecords]:
    """Hold the calls recorded inside until the caller stores them (``llm_usage_record_all``)."""
    deferred = DeferredRecords()
    token = _deferred.set(deferred)
    try:
        yield deferred
    finally:
        _deferred.reset(token)


def llm_usage_defer(record: LlmCallRecord) -> bool:
    """Keep ``record`` for the end of the work, if the work defers its records; False: store it now."""
    deferred = _deferred.get()
    if deferred is None or not deferred.open:
        return False
    deferred.records.append(record)
    return True


def llm_call_in_flight(settle: Callable[[], LlmCallRecord | None]) -> DeferredRecords | None:
    """A streamed call began: if the work defers its records, it settles the call when it ends.

    Returns the work's records, for the call to hold its record in wherever it is settled (a stream
    closed by the garbage collector runs outside the work's context).
    """
    deferred = _deferred.get()
    if deferred is not None and deferred.open:
        deferred.in_flight.append(settle)
        return deferred
    return None


def llm_usage_defer_to(deferred: DeferredRecords | None, record: LlmCallRecord) -> bool:
    """``llm_usage_defer`` into the records of the work that watched the call, if still open."""
    if deferred is not None and deferred.open:
        deferred.records.append(record)
        return True
    return llm_usage_defer(record)


def llm_usage_record_all(*, deferred: DeferredRecords) -> None:
    """Store the records held back (closing the holder: later calls are stored as they come)."""
    deferred.close()
    llm_usage_record_many(records=deferred.records)


def current_attribution() -> LlmAttribution | None:
    """Whom the model call about to be made is for; ``None`` when metering is off or nobody is."""
    if not settings.LLM_METERING_ENABLED:
        return None
    return _attribution.get()


def period_of(moment: dt.datetime) -> dt.date:
    """The first day of ``moment``'s calendar month (UTC): budgets run by calendar month."""
    return moment.astimezone(dt.UTC).date().replace(day=1)


def usage_from_report(usage: Any) -> LlmCallUsage | None:
    """The provider's ``usage`` object (a dict or the SDK's model) as counts; ``None`` if absent."""
    if usage is None:
        return None
    if not isinstance(usage, dict):
        usage = usage.model_dump() if hasattr(usage, "model_dump") else {}
    details = usage.get("prompt_tokens_details") or {}
    return LlmCallUsage(
        prompt=_count(usage.get("prompt_tokens")),
        completion=_count(usage.get("completion_tokens")),
        cached=_count(details.get("cached_tokens") if isinstance(details, dict) else 0),
    )


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def estimated_cost_usd(*, model: str, prompt: int, completion: int, cached: int) -> float:
    """The cost of these tokens by ``LLM_PRICES`` (cached tokens are part of the prompt's); 0 if unpriced."""
    prices = settings.LLM_PRICES.get(model)
    if not prices or len(prices) != 3:
        return 0.0
    per_input, per_cached, per_output = (float(p) for p in prices)
    cached = min(cached, prompt)
    return ((prompt - cached) * per_input + cached * per_cached + completion * per_output) / 1_000_000


def llm_usage_record(
    *, call_id: str, attribution: LlmAttribution, model: str, usage: LlmCallUsage, estimated: bool = False
) -> bool:
    """Store one call's usage and add it to the user's month; False when this call was already recorded."""
    now = timezone.now()
    with transaction.atomic():
        try:
            with transaction.atomic():
                LlmUsage.objects.create(
                    call_id=call_id,
                    user_id=attribution.user_id,
                    model=model[:200],
                    purpose=str(attribution.purpose),
                    prompt_tokens=usage.prompt,
                    completion_tokens=usage.completion,
                    cached_tokens=usage.cached,
                    run_id=str(attribution.run_id)[:64],
                    estimated=estimated,
                    created_at=now,
                )
        except IntegrityError:
            return False
        _period_add(user_id=attribution.user_id, period=period_of(now), tokens=usage.total)
    metrics.llm_call_metered(
        model=model,
        purpose=str(attribution.purpose),
        tier=attribution.tier or "unknown",
        prompt=usage.prompt,
        completion=usage.completion,
        cached=usage.cached,
        cost_usd=estimated_cost_usd(model=model, prompt=usage.prompt, completion=usage.completion, cached=usage.cached),
    )
    return True


def llm_usage_record_many(*, records: list[LlmCallRecord]) -> list[bool]:
    """``llm_usage_record`` for several calls in one statement, one trip: the insert and each user's
    month (a run's extractions finishing together, a chat turn's calls before its ``stream_end``);
    per record, False when its call was already recorded."""
    if not records:
        return []
    now = timezone.now()
    rows = [
        (
            r.call_id,
            r.attribution.user_id,
            r.model[:200],
            str(r.attribution.purpose),
            r.usage.prompt,
            r.usage.completion,
            r.usage.cached,
            str(r.attribution.run_id)[:64],
            r.estimated,
            now,
        )
        for r in records
    ]
    with connection.cursor() as cursor:
        values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"] * len(rows))
        cursor.execute(_RECORD_USAGE.format(values=values), [v for row in rows for v in row] + [period_of(now)])
        fresh = {call_id for (call_id,) in cursor.fetchall()}
    answers = []
    for r in records:
        first = r.call_id in fresh
        fresh.discard(r.call_id)  # a call id twice in one batch counts once
        answers.append(first)
    for r, first in zip(records, answers, strict=True):
        if first:
            metrics.llm_call_metered(
                model=r.model,
                purpose=str(r.attribution.purpose),
                tier=r.attribution.tier or "unknown",
                prompt=r.usage.prompt,
                completion=r.usage.completion,
                cached=r.usage.cached,
                cost_usd=estimated_cost_usd(
                    model=r.model, prompt=r.usage.prompt, completion=r.usage.completion, cached=r.usage.cached
                ),
            )
    return answers


# Raw SQL on LlmUsage's and LlmBudgetPeriod's tables (Django's default names), one statement (atomic
# on its own): ON CONFLICT ... RETURNING says which calls are new, and only they add to their user's
# month (its row made if need be). A call id twice in one batch is inserted, and counted, once.
_RECORD_USAGE = """
    WITH fresh AS (
        INSERT INTO billing_llmusage (call_id, user_id, model, purpose, prompt_tokens, completion_tokens,
                                      cached_tokens, run_id, estimated, created_at)
        VALUES {values}
        ON CONFLICT (call_id) DO NOTHING
        RETURNING call_id, user_id, prompt_tokens + completion_tokens AS tokens
    ), months AS (
        INSERT INTO billing_llmbudgetperiod (user_id, period, used_tokens)
        SELECT user_id, %s, SUM(tokens) FROM fresh GROUP BY user_id
        ON CONFLICT (user_id, period)
        DO UPDATE SET used_tokens = billing_llmbudgetperiod.used_tokens + EXCLUDED.used_tokens
    )
    SELECT call_id FROM fresh
"""


def _period_add(*, user_id: Any, period: dt.date, tokens: int) -> None:
    rows = LlmBudgetPeriod.objects.filter(user_id=user_id, period=period)
    if not rows.update(used_tokens=F("used_tokens") + tokens):
        LlmBudgetPeriod.objects.bulk_create([LlmBudgetPeriod(user_id=user_id, period=period)], ignore_conflicts=True)
        rows.update(used_tokens=F("used_tokens") + tokens)
