"""IANA time zone names a user may choose (agent schedules run in the user's zone)."""

from __future__ import annotations

from functools import lru_cache
from zoneinfo import available_timezones


@lru_cache(maxsize=1)
def _names() -> frozenset[str]:
    return frozenset(available_timezones())


def time_zone_names() -> list[str]:
    """Every accepted name, sorted: the OpenAPI enum of ``time_zone``."""
    return sorted(_names())


def time_zone_is_valid(name: object) -> bool:
    """True for a known IANA name such as ``Europe/Berlin`` or ``UTC``."""
    return isinstance(name, str) and name in _names()
