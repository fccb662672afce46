"""``usage_notice``: tell the user's app that 80 % of the month's LLM token budget is used, once per
budget period, on the sockets that negotiated the ``usage_notice`` capability (never a seed client).

The hook for LLM metering is ``usage_notice_check`` (async) / ``usage_notice_check_sync``: call it
after recording a user's usage with the period's totals. It decides itself whether the threshold is
crossed and whether this period was already notified (a Redis key per user and period, expiring
with the period), so calling it after every metered call is cheap and sends at most once.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Literal

from asgiref.sync import async_to_sync
from django.conf import settings
from pydantic import Field

from apps.devices.frames import OutgoingFrameModel
from apps.devices.realtime_redis import loop_redis
from apps.devices.services import user_frame_broadcast

logger = logging.getLogger(__name__)

USAGE_NOTICE = "usage_notice"  # the capability a socket negotiates to get UsageNotice
SENT_KEY = "billing:usage_notice:{user_id}:{period}"


class UsageNotice(OutgoingFrameModel):
    """``used`` of ``budget`` LLM tokens this period; the budget renews at ``resets_at`` (ISO 8601)."""

    type: Literal["usage_notice"] = "usage_notice"
    used: int = Field(ge=0)
    budget: int = Field(ge=0)
    resets_at: str


def usage_notice_due(*, used: int, budget: int) -> bool:
    return budget > 0 and used * 100 >= budget * settings.LLM_USAGE_NOTICE_PERCENT


async def usage_notice_check(*, user_id, used: int, budget: int, resets_at: dt.datetime) -> bool:
    """Send ``usage_notice`` if ``used`` crossed 80 % of ``budget`` and this period (the one ending
        at ``resets_at``) was not notified yet; True if a socket got it now (with none online, the period
    stays un-notified and a later call tries again). Never raises on a send failure
        (metering must not fail over a notice)."""
    if not usage_notice_due(used=used, budget=budget):
        return False
    key = SENT_KEY.format(user_id=user_id, period=int(resets_at.timestamp()))
    ttl = max(int((resets_at - dt.datetime.now(dt.UTC)).total_seconds()), 0) + 86_400
    try:
        if not await loop_redis().set(key, "1", nx=True, ex=ttl):
            return False
        frame = UsageNotice(used=used, budget=budget, resets_at=resets_at.astimezone(dt.UTC).isoformat())
        sent = await user_frame_broadcast(user_id=user_id, frame=frame.model_dump(), capability=USAGE_NOTICE)
        if not sent:
            # No capable socket online: the next metered call of the period tries again.
            await loop_redis().delete(key)
    except Exception:
        logger.warning("billing: could not send the usage notice of user %s", user_id, exc_info=True)
        return False
    return bool(sent)


def usage_notice_check_sync(*, user_id, used: int, budget: int, resets_at: dt.datetime) -> bool:
    """``usage_notice_check`` for synchronous callers (a request, a Celery task)."""
    return async_to_sync(usage_notice_check)(user_id=user_id, used=used, budget=budget, resets_at=resets_at)
