"""Cron with a time zone yields the expected fire times, across daylight-saving changes.

These pin Conveyor's use of APScheduler's CronTrigger (conveyor.scheduling.triggers),
including the two places where we correct it (weekday numbering, the repeated hour).
"""

from datetime import UTC, datetime

import pytest

from conveyor.errors import InvalidSchedule
from conveyor.scheduling.triggers import cron_trigger, interval_trigger, next_fire_times


def utc(*parts):
    return datetime(*parts, tzinfo=UTC)


def test_daily_8am_london_moves_with_summer_time():
    # Given "every day at 08:00" in Europe/London, before the clocks go forward (30 March 2025)
    trigger = cron_trigger("0 8 * * *", "Europe/London")
    # When we ask for the next four fire times
    times = next_fire_times(trigger, utc(2025, 3, 28), 4)
    # Then they stay at 08:00 local: 08:00 UTC in GMT, 07:00 UTC in BST
    assert times == [utc(2025, 3, 28, 8), utc(2025, 3, 29, 8), utc(2025, 3, 30, 7), utc(2025, 3, 31, 7)]


def test_daily_8am_new_york_moves_back_in_autumn():
    trigger = cron_trigger("0 8 * * *", "America/New_York")
    # DST ends on 2 November 2025: 08:00 EDT is 12:00 UTC, 08:00 EST is 13:00 UTC
    assert next_fire_times(trigger, utc(2025, 11, 1), 2) == [utc(2025, 11, 1, 12), utc(2025, 11, 2, 13)]


def test_a_time_in_the_skipped_hour_fires_once_right_after_the_change():
    # Given 01:30 daily in London: on 30 March 2025 01:00-02:00 does not exist
    trigger = cron_trigger("30 1 * * *", "Europe/London")
    # Then that day it fires once, at 02:30 BST (01:30 UTC), and at 01:30 BST afterwards
    assert next_fire_times(trigger, utc(2025, 3, 29), 3) == [
        utc(2025, 3, 29, 1, 30),
        utc(2025, 3, 30, 1, 30),
        utc(2025, 3, 31, 0, 30),
    ]


def test_a_time_in_the_repeated_hour_fires_once_not_twice():
    # Given 01:30 daily in London: on 26 October 2025 01:00-02:00 happens twice
    trigger = cron_trigger("30 1 * * *", "Europe/London")
    # Then it fires once that day, at the first 01:30 (BST, 00:30 UTC)
    assert next_fire_times(trigger, utc(2025, 10, 25), 3) == [
        utc(2025, 10, 25, 0, 30),
        utc(2025, 10, 26, 0, 30),
        utc(2025, 10, 27, 1, 30),
    ]


def test_fire_times_never_go_backwards_in_the_repeated_hour():
    # Given every 30 minutes in London across the autumn change (APScheduler 3.11 alone
    # alternates 01:30 BST / 01:00 GMT forever here)
    trigger = cron_trigger("*/30 * * * *", "Europe/London")
    times = next_fire_times(trigger, utc(2025, 10, 25, 23, 50), 5)
    # Then the wall-clock times 01:00 and 01:30 fire once each (in BST), then 02:00 GMT
    assert times == [
        utc(2025, 10, 26, 0),
        utc(2025, 10, 26, 0, 30),
        utc(2025, 10, 26, 2),
        utc(2025, 10, 26, 2, 30),
        utc(2025, 10, 26, 3),
    ]


def test_weekdays_use_crontab_numbering():
    # Given "weekdays at 09:00" written the crontab way (1-5 = Monday to Friday)
    trigger = cron_trigger("0 9 * * 1-5", "Europe/Paris")
    # When listed from Friday 7 March 2025
    days = [t.astimezone(trigger.timezone).strftime("%a") for t in next_fire_times(trigger, utc(2025, 3, 7), 6)]
    # Then it skips the weekend (APScheduler 3 alone reads 1-5 as Tuesday to Saturday)
    assert days == ["Fri", "Mon", "Tue", "Wed", "Thu", "Fri"]


@pytest.mark.parametrize("weekday", ["0", "7", "sun"])
def test_sunday_is_0_or_7(weekday):
    trigger = cron_trigger(f"0 12 * * {weekday}", "UTC")
    assert next_fire_times(trigger, utc(2025, 3, 3), 1) == [utc(2025, 3, 9, 12)]  # Sunday 9 March


def test_interval_counts_real_seconds_from_its_anchor():
    trigger = interval_trigger(90, utc(2025, 10, 26, 0, 0))
    assert next_fire_times(trigger, utc(2025, 10, 26, 0, 1), 3) == [
        utc(2025, 10, 26, 0, 1, 30),
        utc(2025, 10, 26, 0, 3),
        utc(2025, 10, 26, 0, 4, 30),
    ]


@pytest.mark.parametrize(
    "expression, zone",
    [("0 8 * *", "UTC"), ("61 8 * * *", "UTC"), ("0 8 * * 8", "UTC"), ("0 8 * * *", "Mars/Olympus")],
)
def test_bad_cron_or_time_zone_is_refused(expression, zone):
    with pytest.raises(InvalidSchedule):
        cron_trigger(expression, zone)


# Checked against crontab's rule (man 5 crontab): "If both fields are restricted (i.e., do
# not contain only *), the command will be run when either field matches the current time."
@pytest.mark.parametrize(
    "expression, start, expected",
    [
        # every 13th and every Friday (not only Friday the 13th): from Monday 1 June 2026
        (
            "0 0 13 * 5",
            utc(2026, 6, 1),
            [utc(2026, 6, 5), utc(2026, 6, 12), utc(2026, 6, 13), utc(2026, 6, 19), utc(2026, 6, 26)],
        ),
        # the 1st and the 15th, and every Monday: from Sunday 1 March 2026
        (
            "30 6 1,15 * 1",
            utc(2026, 3, 1),
            [utc(2026, 3, 1, 6, 30), utc(2026, 3, 2, 6, 30), utc(2026, 3, 9, 6, 30), utc(2026, 3, 15, 6, 30)],
        ),
        # with the weekday field *, the day of the month alone decides
        ("0 12 13 * *", utc(2026, 6, 1), [utc(2026, 6, 13, 12), utc(2026, 7, 13, 12)]),
        # with the day field *, the weekday alone decides (Fridays)
        ("0 12 * * 5", utc(2026, 6, 1), [utc(2026, 6, 5, 12), utc(2026, 6, 12, 12)]),
        # a stepped star counts as a star, as in crontab (Vixie cron's DOM_STAR): both must match,
        # Mondays that are the 1st, 11th, 21st or 31st
        ("0 0 */10 * 1", utc(2026, 6, 1), [utc(2026, 6, 1), utc(2026, 8, 31)]),
    ],
)
def test_both_day_fields_restricted_fire_when_either_matches(expression, start, expected):
    trigger = cron_trigger(expression, "UTC")
    assert next_fire_times(trigger, start, len(expected)) == expected
