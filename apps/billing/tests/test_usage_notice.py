"""``usage_notice``: at 80 % of the period's LLM token budget, once per period, to the user's
sockets that negotiated the capability; never to a seed client."""

from __future__ import annotations

import datetime as dt

import pytest

from apps.billing.usage_notice import usage_notice_check
from apps.devices.tests.conftest import capable_of, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

RESETS_AT = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)


async def test_crossing_80_percent_notifies_capable_sockets_once_per_period(devices, user):
    # given a capable socket and a seed socket of the user
    capable = await devices(user, capabilities=["usage_notice"])
    seed = await devices(user)
    await capable_of(user, "usage_notice")

    # when usage stays under 80 %, then crosses it, then grows further in the same period
    below = await usage_notice_check(user_id=user.id, used=79_999, budget=100_000, resets_at=RESETS_AT)
    crossed = await usage_notice_check(user_id=user.id, used=80_000, budget=100_000, resets_at=RESETS_AT)
    again = await usage_notice_check(user_id=user.id, used=95_000, budget=100_000, resets_at=RESETS_AT)

    # then one notice, at the crossing, with the period's end
    assert (below, crossed, again) == (False, True, False)
    await wait_until(lambda: capable.notices)
    assert capable.notices == [
        {"type": "usage_notice", "used": 80_000, "budget": 100_000, "resets_at": "2027-01-01T00:00:00+00:00"}
    ]
    # and the seed socket saw nothing of it
    await seed.send({"type": "ping"})
    assert await seed.next_frame() == {"type": "pong"}
    assert seed.received == ["pong"]


async def test_the_next_period_is_notified_again(devices, user):
    capable = await devices(user, capabilities=["usage_notice"])
    await capable_of(user, "usage_notice")
    next_period = RESETS_AT + dt.timedelta(days=31)

    assert await usage_notice_check(user_id=user.id, used=90, budget=100, resets_at=RESETS_AT)
    assert await usage_notice_check(user_id=user.id, used=85, budget=100, resets_at=next_period)
    await wait_until(lambda: len(capable.notices) == 2)


async def test_with_no_capable_socket_online_the_notice_waits_for_a_later_call(devices, user):
    # given only a seed socket: nobody can be told
    await devices(user)
    assert not await usage_notice_check(user_id=user.id, used=90, budget=100, resets_at=RESETS_AT)

    # when a capable socket comes and usage is metered again
    capable = await devices(user, capabilities=["usage_notice"])
    await capable_of(user, "usage_notice")

    # then the period's notice is sent then
    assert await usage_notice_check(user_id=user.id, used=91, budget=100, resets_at=RESETS_AT)
    await wait_until(lambda: capable.notices)
