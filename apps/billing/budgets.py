"""Monthly token budgets: the check before work that calls the model starts (a hold taken under
the lock of the user's month), the refusal, staff overrides, and the once-a-month usage notice.

A request is admitted while the month's used tokens plus the holds of requests in flight stay
below the budget; it then holds ``LLM_BUDGET_RESERVATION_TOKENS`` until it ends. Racing requests
take the lock in turn, so once the remainder is held the rest are refused: the budget is
overshot by at most what the last admitted request uses beyond its hold's share.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, NamedTuple

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils import timezone

from apps.core import metrics
from apps.core.audit import AuditAction, audit_record
from apps.core.errors import ApplicationError, CoreErrorCode

from .error_codes import BillingErrorCode
from .metering import (
    DeferredRecords,
    LlmAttribution,
    LlmPurpose,
    llm_attribution,
    llm_records_deferred,
    llm_usage_record_all,
    period_of,
)
from .models import LlmBudgetOverride, LlmBudgetPeriod, LlmReservation
from .tiers import llm_monthly_tokens, upgrade_tier
from .usage_notice import LlmUsageNotice, usage_notice_deliver

logger = logging.getLogger(__name__)


class LlmHold(NamedTuple):
    """An admitted request: its attribution, and its hold (``None`` when nothing was held) within
    the monthly budget it was admitted to."""

    attribution: LlmAttribution
    reservation_id: Any = None
    budget: int | None = None


def period_resets_at(period: dt.date) -> dt.datetime:
    """When the month starting on ``period`` ends: midnight UTC of the next month's first day."""
    following = (period.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return dt.datetime.combine(following, dt.time.min, tzinfo=dt.UTC)


def llm_budget_of(user: Any) -> int | None:
    """The user's monthly token budget: staff's override, else their tier's; ``None``: unlimited."""
    try:
        override = user.llm_budget_override.monthly_tokens  # one query, or none if select_related
    except LlmBudgetOverride.DoesNotExist:
        override = None
    return int(override) if override is not None else llm_monthly_tokens(user)


def _budget_subject(user_id: Any) -> Any:
    """The user with what their budget depends on, in one query."""
    return (
        get_user_model()
        .objects.select_related("llm_budget_override")
        .only("id", "tier", "llm_budget_override__monthly_tokens")
        .get(pk=user_id)
    )


def llm_budget_exhausted_error(*, user: Any, period: dt.date) -> ApplicationError:
    resets_at = period_resets_at(period)
    return ApplicationError(
        BillingErrorCode.LLM_BUDGET_EXHAUSTED,
        f"Your assistant budget for this month is used up; it renews on {resets_at:%Y-%m-%d}"
        + (f", or upgrade to the {upgrade_tier(user)} plan." if upgrade_tier(user) else "."),
        status=402,
        extra={"resets_at": resets_at.isoformat().replace("+00:00", "Z"), "upgrade_tier": upgrade_tier(user)},
    )


def llm_budget_reserve(*, user_id: Any, purpose: LlmPurpose, run_id: str = "") -> LlmHold:
    """Admit work for ``user_id`` that will call the model, or raise ``llm_budget_exhausted`` (402)."""
    user = _budget_subject(user_id)
    attribution = LlmAttribution(user_id=user.pk, purpose=purpose, run_id=str(run_id), tier=str(user.tier))
    if not settings.LLM_METERING_ENABLED:
        return LlmHold(attribution)
    budget = llm_budget_of(user)
    if budget is None:
        return LlmHold(attribution)
    now = timezone.now()
    period = period_of(now)
    reservation_id = uuid.uuid4()
    since = now - dt.timedelta(seconds=settings.LLM_BUDGET_RESERVATION_TTL)
    hold = [reservation_id, user.pk, settings.LLM_BUDGET_RESERVATION_TOKENS, now]
    with transaction.atomic(), connection.cursor() as lock, connection.cursor() as cursor:
        # Two statements (this is on the way to a chat turn's first token), sent with BEGIN in one
        # pipeline: one trip, and one more for COMMIT. The first takes the lock of the user's month
        # (creating the row if need be); the second, a new snapshot taken under that lock, reads the
        # month's use and sees every hold committed before it. The COMMIT does not wait for the WAL
        # to reach the disk (a millisecond or two): the hold is visible to the next request at once
        # all the same, and a database crash in that instant loses only a hold, which expires anyway.
        with connection.connection.pipeline():
            lock.execute(_HOLD_COMMITS_ASYNCHRONOUSLY)
            lock.execute(_LOCK_MONTH, [user.pk, period])
            cursor.execute(_HOLD_IF_ROOM, [*hold, user.pk, period, user.pk, since, budget])
        admitted = cursor.fetchone() is not None
    if not admitted:
        metrics.llm_budget_refused(purpose=str(purpose), tier=str(user.tier))
        raise llm_budget_exhausted_error(user=user, period=period)
    return LlmHold(attribution, reservation_id, budget)


# Raw SQL on the tables of LlmBudgetPeriod and LlmReservation (Django's default names).
_HOLD_COMMITS_ASYNCHRONOUSLY = "SET LOCAL synchronous_commit TO OFF"
_LOCK_MONTH = """
    INSERT INTO billing_llmbudgetperiod (user_id, period, used_tokens) VALUES (%s, %s, 0)
    ON CONFLICT (user_id, period) DO UPDATE SET used_tokens = billing_llmbudgetperiod.used_tokens
"""
_HOLD_IF_ROOM = """
    INSERT INTO billing_llmreservation (id, user_id, tokens, created_at)
    SELECT %s, %s, %s, %s
    WHERE (SELECT used_tokens FROM billing_llmbudgetperiod WHERE user_id = %s AND period = %s)
          + (SELECT COALESCE(SUM(tokens), 0) FROM billing_llmreservation
             WHERE user_id = %s AND created_at >= %s) < %s
    RETURNING id
"""


def llm_budget_release(*, hold: LlmHold) -> None:
    if hold.reservation_id is not None:
        LlmReservation.objects.filter(id=hold.reservation_id).delete()


@contextlib.contextmanager
def llm_budgeted(*, user_id: Any, purpose: LlmPurpose, run_id: str = "") -> Iterator[LlmAttribution]:
    """Admit the work inside (or raise ``llm_budget_exhausted``) and charge its model calls to the user."""
    hold = llm_budget_reserve(user_id=user_id, purpose=purpose, run_id=run_id)
    try:
        with llm_attribution(hold.attribution) as attribution:
            yield attribution
    finally:
        llm_budget_release(hold=hold)


@contextlib.asynccontextmanager
async def llm_budgeted_async(
    *, user_id: Any, purpose: LlmPurpose, run_id: str = "", defer_records: bool = False
) -> AsyncIterator[LlmAttribution]:
    """``llm_budgeted`` for async work: the database work runs off the event loop. ``defer_records``
    stores the calls' usage when the work ends, with the release, rather than on its way."""
    hold = await sync_to_async(llm_budget_reserve)(user_id=user_id, purpose=purpose, run_id=run_id)
    with contextlib.ExitStack() as stack:
        deferred = stack.enter_context(llm_records_deferred()) if defer_records else None
        try:
            with llm_attribution(hold.attribution) as attribution:
                yield attribution
        finally:
            if deferred is not None:  # here, on the loop its streams' meters settle on, not in the thread
                deferred.close()
            await _to_its_end(_work_ended, hold=hold, deferred=deferred)
            await llm_usage_notice_send(user_id=user_id, budget=hold.budget)


async def _to_its_end(work: Callable[..., None], /, **kwargs: Any) -> None:
    """Run ``work`` in sync_to_async's thread to its end even if the awaiting task is cancelled
    (again) meanwhile, then pass the cancellation on. A cancelled chat turn is often cancelled twice
    (a repeated cancel frame, its socket closing), and sync_to_async drops a call still waiting for
    its thread when the task awaiting it is cancelled: the turn's calls would go unrecorded."""
    job = asyncio.ensure_future(sync_to_async(work)(**kwargs))
    cancelled = False
    while not job.done():
        try:
            await asyncio.shield(job)  # the work's own failure is raised from here
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError


def _work_ended(*, hold: LlmHold, deferred: DeferredRecords | None) -> None:
    # One transaction: the records and the release wait for the disk once (each commit waits for
    # the WAL flush), on the way to a chat turn's stream_end.
    with transaction.atomic():
        if deferred is not None:
            llm_usage_record_all(deferred=deferred)
        llm_budget_release(hold=hold)


def llm_usage_now(*, user_id: Any) -> LlmUsageNotice | None:
    """This month's use and budget of the user (``None`` when they have no budget): a read, no marks."""
    budget = llm_budget_of(_budget_subject(user_id))
    if not budget:
        return None
    period = period_of(timezone.now())
    used = LlmBudgetPeriod.objects.filter(user_id=user_id, period=period).values_list("used_tokens", flat=True).first()
    return LlmUsageNotice(used=used or 0, budget=budget, resets_at=period_resets_at(period))


def llm_usage_notice_due(*, user_id: Any, budget: int | None = None) -> LlmUsageNotice | None:
    """The user's use once it crossed ``LLM_USAGE_NOTICE_PERCENT`` of this month's budget, the first
    time it is asked for this month (it is marked as told); ``None`` otherwise. ``budget``: the
    user's, when the caller already knows it (a hold's), else it is looked up."""
    if budget is None:
        budget = llm_budget_of(_budget_subject(user_id))
    if not budget:
        return None
    now = timezone.now()
    period = period_of(now)
    threshold = budget * settings.LLM_USAGE_NOTICE_PERCENT // 100
    # One statement, marked as it is read (it runs after every chat turn, before its stream_end): a
    # racing call waits for the row and re-checks the condition, so only one of them marks it.
    with connection.cursor() as cursor:
        cursor.execute(_MARK_NOTIFIED, [now, user_id, period, threshold])
        row = cursor.fetchone()
    if row is None:
        return None
    return LlmUsageNotice(used=row[0], budget=budget, resets_at=period_resets_at(period))


_MARK_NOTIFIED = """
    UPDATE billing_llmbudgetperiod SET notified_at = %s
    WHERE user_id = %s AND period = %s AND notified_at IS NULL AND used_tokens >= %s
    RETURNING used_tokens
"""


async def llm_usage_notice_send(*, user_id: Any, budget: int | None = None) -> bool:
    """After metered work: past the notice threshold, tell the user once per period. The period's row
    is marked as told (``notified_at``, the durable once) before the registered sender runs, and the
    mark is taken back when no capable socket got it, so a later metered call tries again. True if a
    socket got it now; never raises (metering must not fail over a notice)."""
    notice = None
    sent = False
    try:
        notice = await sync_to_async(llm_usage_notice_due)(user_id=user_id, budget=budget)
        if notice is None:
            return False
        sent = await usage_notice_deliver(user_id=user_id, notice=notice)
    except Exception:
        logger.warning("billing: could not send the usage notice of user %s", user_id, exc_info=True)
    if notice is not None and not sent:
        try:
            await sync_to_async(_usage_notice_unmark)(user_id=user_id, notice=notice)
        except Exception:
            logger.warning("billing: could not take back the usage notice mark of user %s", user_id, exc_info=True)
    return sent


def _usage_notice_unmark(*, user_id: Any, notice: LlmUsageNotice) -> None:
    # The notice's period is the month that ends at ``resets_at``.
    period = period_of(notice.resets_at - dt.timedelta(days=1))
    LlmBudgetPeriod.objects.filter(user_id=user_id, period=period).update(notified_at=None)


def llm_budget_override_set(*, user: Any, monthly_tokens: int | None, actor: Any | None) -> None:
    """Give ``user`` a monthly token budget of their own (``None``: back to their tier's), audited."""
    if monthly_tokens is not None and monthly_tokens < 0:
        raise ApplicationError(
            CoreErrorCode.VALIDATION_ERROR,
            "A monthly token budget can't be negative.",
            fields={"monthly_tokens": ["Zero or more."]},
        )
    with transaction.atomic():
        before = LlmBudgetOverride.objects.filter(user_id=user.pk).values_list("monthly_tokens", flat=True).first()
        if monthly_tokens is None:
            LlmBudgetOverride.objects.filter(user_id=user.pk).delete()
        else:
            LlmBudgetOverride.objects.update_or_create(user_id=user.pk, defaults={"monthly_tokens": monthly_tokens})
        audit_record(
            action=AuditAction.LLM_BUDGET_OVERRIDDEN,
            actor=actor,
            subject_user=user,
            data={"before": before, "after": monthly_tokens, "tier_budget": llm_monthly_tokens(user)},
        )
