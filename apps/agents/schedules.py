"""Cron schedules in the owner's time zone: validation and the next due instant (framework-free).

A schedule is a 5-field cron expression read as *wall-clock* time in the user's IANA zone.
Occurrences are computed on the naive local calendar (croniter), then mapped to an instant:

* a local time that does not exist (spring forward, e.g. 02:30 in Europe/Berlin on the last
  Sunday of March) fires once at the first instant after the gap (03:00 local); every
  occurrence inside the gap collapses into that one run, so a daily job still runs once;
* a local time that exists twice (fall back) fires once, at its first occurrence (the
  earlier instant, ``fold=0``); the repeated hour does not fire again.

Missed occurrences are not replayed one by one: the next due time is always the first
occurrence strictly after "now", so a scheduler that was down for hours runs each agent once.
"""

from __future__ import annotations

import datetime as dt
import threading
from functools import lru_cache
from zoneinfo import ZoneInfo

from croniter import CroniterBadCronError, CroniterBadDateError, croniter

from apps.accounts.time_zones import time_zone_is_valid

UTC = dt.UTC
# Give up looking for a next occurrence after this many candidates (a cron that can never fire
# is rejected when it is saved; this only bounds the loop over DST-skipped candidates).
_MAX_CANDIDATES = 1500
_local = threading.local()


class ScheduleError(ValueError):
    """An unusable cron expression or time zone; the message says why, for a 400."""


def time_zone_validate(name: str) -> ZoneInfo:
    """The zone for an IANA name (``Europe/Berlin``, ``UTC``); anything else raises ScheduleError."""
    if not time_zone_is_valid(name):
        raise ScheduleError(f"'{name}' is not an IANA time zone name (for example 'Europe/Berlin' or 'UTC').")
    return _zone(name)


@lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _iterator(expression: str) -> croniter:
    """A parsed croniter for ``expression``, reused per thread (parsing costs more than stepping)."""
    cache: dict[str, croniter] = getattr(_local, "iterators", None) or {}
    if not cache:
        _local.iterators = cache
    iterator = cache.get(expression)
    if iterator is None:
        if len(cache) > 4096:
            cache.clear()
        iterator = cache[expression] = croniter(expression, dt.datetime(2000, 1, 1))  # noqa: DTZ001 - wall clock
    return iterator


def cron_validate(expression: str) -> str:
    """Normalise and check a 5-field cron expression; raise ScheduleError saying what is wrong."""
    expression = " ".join(str(expression).split())
    fields = expression.split(" ")
    if len(fields) != 5:
        raise ScheduleError(
            f"'{expression}' has {len(fields)} field(s); a schedule is 5 fields: minute hour day-of-month month "
            "day-of-week (for example '0 */6 * * *')."
        )
    try:
        croniter(expression, dt.datetime(2000, 1, 1))  # noqa: DTZ001 - wall clock
    except (CroniterBadCronError, ValueError, KeyError) as exc:
        raise ScheduleError(f"'{expression}' is not a valid cron expression: {exc}.") from None
    try:
        next_run_after(expression=expression, time_zone="UTC", after=dt.datetime(2000, 1, 1, tzinfo=UTC))
    except ScheduleError:
        raise ScheduleError(f"'{expression}' never fires (no such date, e.g. 30 February).") from None
    return expression


def _instant(wall: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """The UTC instant of a naive local wall time, by the module's DST rule."""
    first = wall.replace(tzinfo=zone, fold=0)
    as_utc = first.astimezone(UTC)
    if as_utc.astimezone(zone).replace(tzinfo=None) == wall:
        return as_utc  # exists (for an ambiguous time, fold=0 is the first occurrence)
    # In a gap: fold=1 maps to an instant before the transition, fold=0 to one after it;
    # the transition (the first instant after the gap) lies between them. Bisect on seconds.
    low = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    high = as_utc
    after_offset = high.astimezone(zone).utcoffset()
    while (high - low) > dt.timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == after_offset:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)


def next_run_after(*, expression: str, time_zone: str, after: dt.datetime) -> dt.datetime:
    """The first occurrence of ``expression`` (in ``time_zone``) strictly after the instant ``after``."""
    if after.tzinfo is None:
        raise ValueError("'after' must be an aware datetime")
    zone = _zone(time_zone)
    local = after.astimezone(zone)
    wall = local.replace(tzinfo=None, fold=0, second=0, microsecond=0)
    if local.fold:
        # In the repeated hour after a fall-back, wall times earlier than ``wall`` are instants
        # still ahead (their first occurrence is past): start an hour back, the check skips them.
        wall -= dt.timedelta(hours=1)
    iterator = _iterator(expression)
    iterator.set_current(wall, force=True)
    for _ in range(_MAX_CANDIDATES):
        try:
            candidate = iterator.get_next(dt.datetime)
        except CroniterBadDateError:
            break
        instant = _instant(candidate, zone)
        if instant > after:
            return instant
    raise ScheduleError(f"'{expression}' has no occurrence after {after.isoformat()}.")
