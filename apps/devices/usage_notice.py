"""The ``usage_notice`` frame: the user's app hears that most of the month's LLM token budget is used,
on the sockets that negotiated the ``usage_notice`` capability (never a seed client). Billing decides
when; this module is the sender it calls (registered in ``DevicesConfig.ready``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import Field

from apps.billing.usage_notice import LlmUsageNotice

from .frames import OutgoingFrameModel
from .services import user_frame_broadcast

USAGE_NOTICE = "usage_notice"  # the capability a socket negotiates to get UsageNotice


class UsageNotice(OutgoingFrameModel):
    """``used`` of ``budget`` LLM tokens this period; the budget renews at ``resets_at`` (ISO 8601)."""

    type: Literal["usage_notice"] = "usage_notice"
    used: int = Field(ge=0)
    budget: int = Field(ge=0)
    resets_at: str


async def usage_notice_broadcast(*, user_id: Any, notice: LlmUsageNotice) -> bool:
    """Send the notice to the user's capable sockets in any process; True if one got it."""
    frame = UsageNotice(
        used=notice.used, budget=notice.budget, resets_at=notice.resets_at.astimezone(dt.UTC).isoformat()
    )
    return bool(await user_frame_broadcast(user_id=user_id, frame=frame.model_dump(), capability=USAGE_NOTICE))
