"""Cron schedules in the user's time zone: validation, and the DST rule (no database)."""

from __future__ import annotations

import datetime as dt

import pytest

from apps.agents.schedules import ScheduleError, cron_validate, next_run_after

UTC = dt.UTC


def _utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_berlin_nonexistent_time_fires_once_at_the_end_of_the_gap():
    # given "30 2 * * *" in Berlin; on 2026-03-29 the clocks jump from 02:00 CET to 03:00 CEST (01:00 UTC)
    # when the next run is computed the evening before
    first = next_run_after(expression="30 2 * * *", time_zone="Europe/Berlin", after=_utc(2026, 3, 28, 22, 0))
    second = next_run_after(expression="30 2 * * *", time_zone="Europe/Berlin", after=first)

    # then it fires once at 03:00 CEST, and the next day at 02:30 CEST again
    assert first == _utc(2026, 3, 29, 1, 0)
    assert second == _utc(2026, 3, 30, 0, 30)


def test_occurrences_inside_the_gap_collapse_into_one_run():
    after = _utc(2026, 3, 28, 22, 0)
    first = next_run_after(expression="*/15 2 * * *", time_zone="Europe/Berlin", after=after)
    second = next_run_after(expression="*/15 2 * * *", time_zone="Europe/Berlin", after=first)

    assert first == _utc(2026, 3, 29, 1, 0)
    assert second == _utc(2026, 3, 30, 0, 0)  # 02:00 CEST the next day


def test_nine_oclock_stays_nine_oclock_local_across_both_changes_in_berlin():
    def nine(after: dt.datetime) -> dt.datetime:
        return next_run_after(expression="0 9 * * *", time_zone="Europe/Berlin", after=after)

    assert nine(_utc(2026, 3, 28, 9, 0)) == _utc(2026, 3, 29, 7, 0)  # CEST: UTC+2 from the change day
    assert nine(_utc(2026, 3, 27, 9, 0)) == _utc(2026, 3, 28, 8, 0)  # CET: UTC+1 before it
    assert nine(_utc(2026, 10, 24, 9, 0)) == _utc(2026, 10, 25, 8, 0)  # back to CET on 25 October
    assert nine(_utc(2026, 10, 23, 9, 0)) == _utc(2026, 10, 24, 7, 0)


def test_ambiguous_time_fires_once_at_its_first_occurrence():
    # given 2026-10-25 in Berlin: 02:00-03:00 happens twice (CEST 00:00-01:00 UTC, then CET 01:00-02:00 UTC)
    first = next_run_after(expression="30 2 * * *", time_zone="Europe/Berlin", after=_utc(2026, 10, 24, 22, 0))
    # when asked again from inside the repeated hour
    during_repeat = next_run_after(expression="30 2 * * *", time_zone="Europe/Berlin", after=_utc(2026, 10, 25, 1, 10))

    # then the first 02:30 (CEST) fires, the second one does not
    assert first == _utc(2026, 10, 25, 0, 30)
    assert during_repeat == _utc(2026, 10, 26, 1, 30)


def test_the_repeated_hour_does_not_fire_again_for_a_frequent_schedule():
    after = _utc(2026, 10, 25, 1, 10)  # 02:10 CET, the second pass

    assert next_run_after(expression="*/15 * * * *", time_zone="Europe/Berlin", after=after) == _utc(2026, 10, 25, 2, 0)


def test_new_york_spring_forward_and_fall_back():
    # 2026-03-08 02:00 EST → 03:00 EDT (07:00 UTC); 2026-11-01 02:00 EDT → 01:00 EST (06:00 UTC)
    assert next_run_after(expression="30 2 * * *", time_zone="America/New_York", after=_utc(2026, 3, 8, 0, 0)) == _utc(
        2026, 3, 8, 7, 0
    )
    assert next_run_after(expression="0 9 * * *", time_zone="America/New_York", after=_utc(2026, 3, 7, 15, 0)) == _utc(
        2026, 3, 8, 13, 0
    )
    assert next_run_after(expression="0 9 * * *", time_zone="America/New_York", after=_utc(2026, 3, 6, 15, 0)) == _utc(
        2026, 3, 7, 14, 0
    )
    assert next_run_after(expression="30 1 * * *", time_zone="America/New_York", after=_utc(2026, 11, 1, 4, 0)) == _utc(
        2026, 11, 1, 5, 30
    )  # 01:30 EDT, the first of the two


def test_next_run_is_strictly_after_the_given_instant():
    at_nine = _utc(2026, 5, 4, 9, 0)

    assert next_run_after(expression="0 9 * * *", time_zone="UTC", after=at_nine) == _utc(2026, 5, 5, 9, 0)


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("* * *", "5 fields"),
        ("* * * * * *", "5 fields"),
        ("61 * * * *", "not a valid cron"),
        ("a b c d e", "not a valid cron"),
        ("0 0 30 2 *", "never fires"),
    ],
)
def test_invalid_cron_says_why(expression, reason):
    with pytest.raises(ScheduleError, match=reason):
        cron_validate(expression)


def test_cron_is_normalised():
    assert cron_validate("  0   */6 * * *  ") == "0 */6 * * *"
