"""The frame budget of one socket: a token bucket, and the rule that closes a client that keeps flooding.

Plain Python (no socket, no settings): the consumer asks ``take(cost)`` before it parses a frame.
Dropped frames are counted until the client has been quiet long enough for the bucket to fill
up again; a client that never lets it fill (a sustained flood just above the rate) still reaches
``close_after`` and is told to go.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import Enum


class Verdict(Enum):
    ACCEPT = "accept"
    DROP_AND_WARN = "drop_and_warn"  # the first drop of a flood: tell the client to slow down
    DROP = "drop"
    CLOSE = "close"  # the flood went on: close the socket


class FrameBudget:
    __slots__ = ("_at", "_clock", "_tokens", "burst", "close_after", "dropped", "rate")  # one per socket

    def __init__(
        self, *, rate: float, burst: float, close_after: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.close_after = close_after
        self._clock = clock
        self._tokens = self.burst
        self._at = clock()
        self.dropped = 0

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= self.burst:
            self.dropped = 0  # quiet long enough to fill the bucket: the flood is over

    def available(self, cost: float = 1.0) -> bool:
        self._refill()
        return self._tokens >= cost

    def spend(self, cost: float = 1.0) -> bool:
        """Spend ``cost`` tokens if there are enough (nothing counted as dropped if not)."""
        self._refill()
        if self._tokens >= cost:
            self._tokens -= cost
            return True
        return False

    def refund(self, cost: float = 1.0) -> None:
        """Give back what a frame spent once it turns out to be an answer to one of our own calls."""
        self._refill()
        self._tokens = min(self.burst, self._tokens + cost)

    def take(self, cost: float = 1.0) -> Verdict:
        """Spend ``cost`` tokens for one frame, or count it as dropped."""
        self._refill()
        if self._tokens >= cost:
            self._tokens -= cost
            return Verdict.ACCEPT
        self.dropped += 1
        if self.dropped >= self.close_after:
            return Verdict.CLOSE
        return Verdict.DROP_AND_WARN if self.dropped == 1 else Verdict.DROP


def frame_cost(size: int) -> float:
    """Big frames cost more: one token, plus one per 64 KiB, so size floods drain the bucket too."""
    return 1.0 + size // 65536
