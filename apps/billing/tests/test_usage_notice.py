"""``usage_notice``: at 80 % of the period's LLM token budget, once per period, to the user's
sockets that negotiated the capability; never to a seed client."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from apps.billing.budgets import llm_budget_override_set, llm_budgeted_async, llm_usage_notice_send, period_resets_at
from apps.billing.metering import LlmAttribution, LlmCallUsage, LlmPurpose, llm_usage_record, period_of
from apps.billing.models import LlmBudgetPeriod
from apps.devices.tests.conftest import capable_of, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def use_tokens(user, tokens: int) -> None:
    """Meter ``tokens`` of chat for ``user`` this month."""
    llm_usage_record(
        call_id=uuid.uuid4().hex,
        attribution=LlmAttribution(user_id=user.pk, purpose=LlmPurpose.CHAT, tier=user.tier),
        model="gpt-4o-mini",
        usage=LlmCallUsage(prompt=tokens, completion=0, cached=0),
    )


async def test_crossing_80_percent_notifies_capable_sockets_once_per_period(devices, user):
    # given a capable socket and a seed socket of the user, and a 100,000-token month
    capable = await devices(user, capabilities=["usage_notice"])
    seed = await devices(user)
    await capable_of(user, "usage_notice")
    await sync_to_async(llm_budget_override_set)(user=user, monthly_tokens=100_000, actor=None)

    # when usage stays under 80 %, then crosses it, then grows further in the same period
    await sync_to_async(use_tokens)(user, 79_999)
    below = await llm_usage_notice_send(user_id=user.id)
    await sync_to_async(use_tokens)(user, 1)
    crossed = await llm_usage_notice_send(user_id=user.id)
    await sync_to_async(use_tokens)(user, 15_000)
    again = await llm_usage_notice_send(user_id=user.id)

    # then one notice, at the crossing, with the period's end
    assert (below, crossed, again) == (False, True, False)
    await wait_until(lambda: capable.notices)
    month = await LlmBudgetPeriod.objects.aget(user=user)
    assert capable.notices == [
        {
            "type": "usage_notice",
            "used": 80_000,
            "budget": 100_000,
            "resets_at": period_resets_at(month.period).isoformat(),
        }
    ]
    # and the seed socket saw nothing of it
    await seed.send({"type": "ping"})
    assert await seed.next_frame() == {"type": "pong"}
    assert seed.received == ["pong"]


async def test_the_next_period_is_notified_again(devices, user):
    # given last month was notified already
    capable = await devices(user, capabilities=["usage_notice"])
    await capable_of(user, "usage_notice")
    await sync_to_async(llm_budget_override_set)(user=user, monthly_tokens=100, actor=None)
    this_month = period_of(timezone.now())
    last_month = period_of(dt.datetime.combine(this_month, dt.time(), tzinfo=dt.UTC) - dt.timedelta(days=1))
    await LlmBudgetPeriod.objects.acreate(user=user, period=last_month, used_tokens=95, notified_at=timezone.now())

    # when this month crosses the threshold
    await sync_to_async(use_tokens)(user, 85)

    # then this month is told too
    assert await llm_usage_notice_send(user_id=user.id)
    await wait_until(lambda: len(capable.notices) == 1)


async def test_with_no_capable_socket_online_the_notice_waits_for_a_later_call(devices, user):
    # given only a seed socket: nobody can be told
    await devices(user)
    await sync_to_async(llm_budget_override_set)(user=user, monthly_tokens=100, actor=None)
    await sync_to_async(use_tokens)(user, 90)
    assert not await llm_usage_notice_send(user_id=user.id)
    month = await LlmBudgetPeriod.objects.aget(user=user)
    assert month.notified_at is None  # the mark was taken back

    # when a capable socket comes and usage is metered again
    capable = await devices(user, capabilities=["usage_notice"])
    await capable_of(user, "usage_notice")
    await sync_to_async(use_tokens)(user, 1)

    # then the period's notice is sent then
    assert await llm_usage_notice_send(user_id=user.id)
    await wait_until(lambda: capable.notices)


async def test_metered_work_past_the_threshold_notifies_once_and_marks_the_period_row(devices, user):
    # given a capable socket and a month at 85 % of its budget
    await sync_to_async(llm_budget_override_set)(user=user, monthly_tokens=100_000, actor=None)
    await sync_to_async(use_tokens)(user, 85_000)
    capable = await devices(user, capabilities=["usage_notice"])
    await capable_of(user, "usage_notice")

    # when two pieces of metered work end in the same period
    for _ in range(2):
        async with llm_budgeted_async(user_id=user.pk, purpose=LlmPurpose.CHAT):
            pass

    # then one notice, and the period's row (the durable mark) says it was told
    await wait_until(lambda: capable.notices)
    month = await LlmBudgetPeriod.objects.aget(user=user)
    assert month.notified_at is not None
    assert [(n["used"], n["budget"]) for n in capable.notices] == [(85_000, 100_000)]
