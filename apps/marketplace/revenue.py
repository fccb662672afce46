"""The 70/30 revenue split in integer cents, and its proportional reversal on refunds and disputes.

Rounding rule: the platform fee is 30 % of the gross rounded half up to a whole cent; the
developer gets the rest (gross - fee), so the two always add up to the gross. Reversals are
computed on the cumulative reversed amount, so several partial refunds that add up to the full
gross reverse exactly the original fee and share.
"""

from __future__ import annotations

from typing import Final, NamedTuple

PLATFORM_FEE_PERCENT: Final = 30


class Split(NamedTuple):
    gross_cents: int
    fee_cents: int
    developer_cents: int


def platform_fee_cents(gross_cents: int) -> int:
    """30 % of ``gross_cents``, rounded half up (integer arithmetic, no floats)."""
    if gross_cents < 0:
        raise ValueError("gross must not be negative")
    return (gross_cents * PLATFORM_FEE_PERCENT + 50) // 100


def split(gross_cents: int) -> Split:
    fee = platform_fee_cents(gross_cents)
    return Split(gross_cents=gross_cents, fee_cents=fee, developer_cents=gross_cents - fee)


def reversal_delta(*, gross_cents: int, reversed_before_cents: int, reversed_now_cents: int) -> Split:
    """The part of the split to reverse when the cumulative reversed amount of a sale of
    ``gross_cents`` grows from ``reversed_before_cents`` to ``reversed_now_cents``."""
    now = split(min(reversed_now_cents, gross_cents))
    before = split(min(reversed_before_cents, gross_cents))
    return Split(
        gross_cents=now.gross_cents - before.gross_cents,
        fee_cents=now.fee_cents - before.fee_cents,
        developer_cents=now.developer_cents - before.developer_cents,
    )
