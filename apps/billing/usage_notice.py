"""The usage notice's hook: billing decides when a user is told that most of the month's LLM token
budget is used (once per period, marked on the period's row); the layer that owns the sockets
registers the sender at app ready, so billing imports nothing above it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple, Protocol


class LlmUsageNotice(NamedTuple):
    used: int
    budget: int
    resets_at: dt.datetime


class UsageNoticeSender(Protocol):
    async def __call__(self, *, user_id: Any, notice: LlmUsageNotice) -> bool:
        """Tell the user's capable sockets; True if at least one got it."""
        ...


_sender: UsageNoticeSender | None = None


def usage_notice_sender_register(sender: UsageNoticeSender) -> None:
    """Install the one sender of usage notices (the socket layer does, in its ``AppConfig.ready``)."""
    global _sender
    _sender = sender


async def usage_notice_deliver(*, user_id: Any, notice: LlmUsageNotice) -> bool:
    """Hand the notice to the registered sender; False when none is registered or nobody got it."""
    if _sender is None:
        return False
    return await _sender(user_id=user_id, notice=notice)
