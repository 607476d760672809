"""Operators' changes to a schedule that the API and the dashboard share."""

from django.db import transaction

from conveyor.errors import ScheduleNotFound
from conveyor.scheduling.models import Schedule


def get(name: str, *, lock: bool = False) -> Schedule:
    """The schedule named `name` (locked for update inside a transaction if asked); ScheduleNotFound."""
    queryset = Schedule.objects.select_for_update() if lock else Schedule.objects.all()
    try:
        return queryset.get(name=name)
    except Schedule.DoesNotExist:
        raise ScheduleNotFound(f"no schedule {name!r}") from None


def set_enabled(name: str, enabled: bool) -> Schedule:
    """Enable or disable a schedule. Enabled again, it fires from its next due time on (no catch-up)."""
    with transaction.atomic():
        schedule = get(name, lock=True)
        if schedule.enabled != enabled:
            schedule.enabled = enabled
            schedule.save()
    return schedule
