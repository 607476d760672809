"""Fire times: APScheduler 3.11 triggers, wrapped where they surprise.

Two things APScheduler 3's triggers do that a crontab user does not expect, and what
we do about them (each checked on APScheduler 3.11.3):

- `CronTrigger.from_crontab` numbers weekdays from Monday = 0 (its docs call this "a
  historical mistake" kept for compatibility), so "1-5" would mean Tuesday to Saturday.
  `cron_trigger()` rewrites numeric weekdays to names with crontab's numbering
  (0 and 7 = Sunday), so "0 8 * * 1-5" means Monday to Friday, as everywhere else.
- In the repeated hour after a daylight-saving fall-back, asking for "the next fire time
  after t" can go backwards (01:30 BST -> 01:00 GMT -> 01:30 BST ...). `next_after()`
  never returns a time at or before t, and never fires a wall-clock time twice: a
  repeated wall-clock time fires once, at its first occurrence. A wall-clock time that
  does not exist (spring forward) fires as APScheduler places it: a fixed-time schedule
  such as "30 1 * * *" fires once, at 02:30 BST; a wildcard such as "*/30" simply has
  no 01:00 and 01:30 that day.

- APScheduler's CronTrigger fires only when both the day of the month and the day of the
  week match. Crontab fires when either matches once both are restricted (neither
  starts with `*`): "0 0 13 * 5" is every 13th and every Friday, not only Friday the
  13th. `cron_trigger()` then returns an `EitherDayTrigger`, the earlier of two cron
  triggers, one per day field. With either field `*` (or `*/n`) the other alone decides,
  as in crontab.

Interval schedules count real elapsed seconds from an anchor (`start_at`), so daylight
saving never moves them.
"""

from datetime import UTC, datetime, timedelta, tzinfo
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from conveyor.errors import InvalidSchedule

_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")
_MICROSECOND = timedelta(microseconds=1)


@cache
def time_zone_names() -> frozenset[str]:
    """The IANA names a schedule may use (the API's schema lists them)."""
    return frozenset(available_timezones())


def zone(name: str) -> ZoneInfo:
    # Only the database's named zones: ZoneInfo also opens paths such as "posix/Europe/Paris".
    if name not in time_zone_names():
        raise InvalidSchedule(f"unknown time zone {name!r} (use an IANA name such as Europe/Paris)")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise InvalidSchedule(f"unknown time zone {name!r} (use an IANA name such as Europe/Paris)") from None


def _weekday_field(field: str) -> str:
    """Crontab weekday field (0/7 = Sunday) -> APScheduler names (unambiguous)."""
    out = []
    for item in field.lower().split(","):
        step = 1
        if "/" in item:
            item, step_text = item.split("/", 1)
            if not step_text.isdigit() or int(step_text) == 0:
                raise InvalidSchedule(f"bad step in weekday field {field!r}")
            step = int(step_text)
        if item == "*":
            low, high = 0, 6
        elif "-" in item:
            low_text, high_text = item.split("-", 1)
            if not (low_text.isdigit() and high_text.isdigit()):
                if step != 1:
                    raise InvalidSchedule(f"use numbers with a step in the weekday field {field!r}")
                out.append(f"{low_text}-{high_text}")  # names (mon-fri) mean the same in both
                continue
            low, high = int(low_text), int(high_text)
        elif item.isdigit():
            low = high = int(item)
        else:
            if step != 1:
                raise InvalidSchedule(f"bad weekday field {field!r}")
            out.append(item)  # a name: mon, tue, ...
            continue
        if not (0 <= low <= 7 and 0 <= high <= 7 and low <= high):
            raise InvalidSchedule(f"weekday out of range in {field!r} (0-7, 0 and 7 are Sunday)")
        out.extend(_DAY_NAMES[day] for day in range(low, high + 1, step))
    return ",".join(dict.fromkeys(out))  # keep order, drop the duplicate Sunday


class EitherDayTrigger(BaseTrigger):
    """Crontab's rule when both day fields are restricted: fire when either matches."""

    def __init__(self, by_month_day: CronTrigger, by_weekday: CronTrigger) -> None:
        self.triggers = (by_month_day, by_weekday)
        self.timezone = by_month_day.timezone

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        found = [t.get_next_fire_time(previous_fire_time, now) for t in self.triggers]
        found = [f for f in found if f is not None]
        return min(found) if found else None

    def __str__(self) -> str:
        return " or ".join(str(t) for t in self.triggers)


def cron_trigger(expression: str, time_zone: str) -> CronTrigger | EitherDayTrigger:
    """Fire times of a standard 5-field crontab expression in an IANA time zone, as crontab reads it."""
    fields = (expression or "").split()
    if len(fields) != 5:
        raise InvalidSchedule(f"cron needs 5 fields (minute hour day month weekday), got {expression!r}")
    minute, hour, day, month, weekday = fields
    try:
        tz = zone(time_zone)

        def trigger(day: str, weekday: str) -> CronTrigger:
            return CronTrigger(
                minute=minute, hour=hour, day=day, month=month, day_of_week=_weekday_field(weekday), timezone=tz
            )

        if day.startswith("*") or weekday.startswith("*"):
            return trigger(day, weekday)
        return EitherDayTrigger(trigger(day, "*"), trigger("*", weekday))
    except InvalidSchedule:
        raise
    except (ValueError, TypeError) as exc:
        raise InvalidSchedule(f"bad cron expression {expression!r}: {exc}") from None


def interval_trigger(seconds: int | None, start_at: datetime | None) -> IntervalTrigger:
    if not seconds or seconds < 1:
        raise InvalidSchedule("interval_seconds must be at least 1")
    return IntervalTrigger(seconds=seconds, start_date=start_at, timezone=UTC)


def _is_repeated_wall_time(instant: datetime, tz: tzinfo) -> bool:
    local = instant.astimezone(tz)
    return local.fold == 1 and local.replace(fold=0).utcoffset() != local.utcoffset()


def _after_repeated_hour(instant: datetime, tz: tzinfo) -> datetime:
    """The first whole minute after `instant` whose wall-clock time is not a repeat."""
    probe = instant.replace(second=0, microsecond=0)
    for _ in range(24 * 60):
        probe += timedelta(minutes=1)
        if not _is_repeated_wall_time(probe, tz):
            return probe
    raise RuntimeError(f"no end to the repeated hour after {instant}")


def first_at_or_after(trigger: BaseTrigger, instant: datetime) -> datetime | None:
    """The first fire time >= instant (aware, returned in UTC), or None if there is none."""
    probe = instant.astimezone(UTC)
    if not isinstance(trigger, CronTrigger | EitherDayTrigger):
        found = trigger.get_next_fire_time(None, probe)
        return None if found is None else found.astimezone(UTC)
    tz = trigger.timezone
    for _ in range(100):
        if _is_repeated_wall_time(probe, tz):
            probe = _after_repeated_hour(probe, tz)
        found = trigger.get_next_fire_time(None, probe.astimezone(tz))
        if found is None:
            return None
        found_utc = found.astimezone(UTC)
        if found_utc < probe or _is_repeated_wall_time(found_utc, tz):
            # Backwards, or the second occurrence of a wall-clock time: skip the repeat.
            probe = _after_repeated_hour(max(found_utc, probe), tz)
            continue
        return found_utc
    raise RuntimeError(f"could not find the next fire time after {instant}")


def next_after(trigger: BaseTrigger, fire_time: datetime) -> datetime | None:
    """The first fire time strictly after `fire_time` (UTC), or None."""
    return first_at_or_after(trigger, fire_time + _MICROSECOND)


def next_fire_times(trigger: BaseTrigger, after: datetime, count: int) -> list[datetime]:
    """The next `count` fire times at or after `after` (for previews and tests)."""
    times = []
    found = first_at_or_after(trigger, after)
    while found is not None and len(times) < count:
        times.append(found)
        found = next_after(trigger, found)
    return times


def ceil_second(instant: datetime) -> datetime:
    if instant.microsecond:
        instant = instant.replace(microsecond=0) + timedelta(seconds=1)
    return instant
