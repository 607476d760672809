"""Schedules declared in code, next to their task, and their sync into the database.

    from conveyor.scheduling import periodic

    @periodic(cron="0 8 * * *", timezone="Europe/Paris", misfire_grace=3600)
    @task(queue_name="emails")
    def send_daily_digest(): ...

`@periodic` goes above `@task` (it registers the task, and returns it unchanged). A task
may carry several, each with its own `name` (the default name is the task's path).

Sync rules (run by the leading scheduler when it takes the lead, and by
`manage.py sync_schedules`): a declaration missing from the database is created; one
whose code changed since the last sync is re-applied (code wins); one unchanged in
code is left as it is in the database, so a runtime edit (disabling it in the admin,
another time) survives restarts and deploys. A schedule that was declared in code and
no longer is gets disabled (never deleted: its fire history stays). A runtime schedule
with the same name as a declaration is left alone and the clash is logged.
"""

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction
from django.tasks import Task

from conveyor.errors import ConveyorError
from conveyor.scheduling import triggers

if TYPE_CHECKING:
    from conveyor.scheduling.models import Schedule

logger = logging.getLogger("conveyor.scheduler")

_declarations: dict[str, "Declaration"] = {}


@dataclass(frozen=True)
class Declaration:
    name: str
    task_path: str
    cron: str = ""
    interval_seconds: int | None = None
    timezone: str = "UTC"
    args: list = field(default_factory=list)
    kwargs: dict = field(default_factory=dict)
    queue_name: str = ""
    priority: int | None = None
    enabled: bool = True
    coalesce: bool = True
    misfire_grace_seconds: int | None = None

    def definition(self) -> dict[str, Any]:
        """The declaration as plain JSON (what is stored in Schedule.code_definition)."""
        return json.loads(json.dumps(asdict(self)))


def _seconds(value: float | timedelta | None, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if value < 0 or int(value) != value:
        raise ValueError(f"{what} must be a whole number of seconds >= 0, got {value!r}")
    return int(value)


def periodic(
    *,
    name: str | None = None,
    cron: str | None = None,
    interval: int | timedelta | None = None,
    timezone: str = "UTC",
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    queue: str | None = None,
    priority: int | None = None,
    enabled: bool = True,
    coalesce: bool = True,
    misfire_grace: int | timedelta | None = None,
) -> Callable[[Task], Task]:
    """Declare a schedule for the decorated django.tasks task.

    cron: 5-field crontab ("0 8 * * 1-5"; weekdays 0 and 7 are Sunday) read in `timezone`.
    interval: seconds (int or timedelta) between fires. Give exactly one of the two.
    coalesce / misfire_grace (seconds or timedelta, None = no limit): what happens to fire
    times missed while no scheduler ran; see docs/scheduler.md, "Missed fires".
    """
    if (cron is None) == (interval is None):
        raise TypeError("@periodic needs exactly one of cron= or interval=")
    interval_seconds = _seconds(interval, "interval")
    # Validate now: a bad declaration fails at import, not at 08:00 tomorrow.
    if cron is not None:
        triggers.cron_trigger(cron, timezone)
    else:
        triggers.interval_trigger(interval_seconds, None)
        triggers.zone(timezone)

    def decorate(task: Task) -> Task:
        if not isinstance(task, Task):
            raise TypeError("@periodic goes above @task (it needs the django.tasks Task)")
        declaration = Declaration(
            name=name or task.module_path,
            task_path=task.module_path,
            cron=cron or "",
            interval_seconds=interval_seconds,
            timezone=timezone,
            args=list(args),
            kwargs=dict(kwargs or {}),
            queue_name=queue or "",
            priority=priority,
            enabled=enabled,
            coalesce=coalesce,
            misfire_grace_seconds=_seconds(misfire_grace, "misfire_grace"),
        )
        existing = _declarations.get(declaration.name)
        if existing is not None and existing != declaration:
            raise ValueError(f"two schedules named {declaration.name!r}; give one a name=")
        _declarations[declaration.name] = declaration
        return task

    return decorate


def declarations() -> dict[str, Declaration]:
    return dict(_declarations)


def _apply(schedule: "Schedule", declaration: Declaration) -> None:
    definition = declaration.definition()
    for key in (
        "task_path",
        "cron",
        "interval_seconds",
        "timezone",
        "args",
        "kwargs",
        "queue_name",
        "priority",
        "enabled",
        "coalesce",
        "misfire_grace_seconds",
    ):
        setattr(schedule, key, definition[key])
    schedule.start_at = None  # an interval re-anchors at the next whole second
    schedule.code_definition = definition


def sync(declared: Mapping[str, Declaration] | None = None) -> dict[str, list[str]]:
    """Make the database agree with the code declarations (rules in the module docstring).

    Returns {"created": [...], "updated": [...], "retired": [...], "skipped": [...]} (names).
    """
    # Late: conveyor.core.models imports conveyor.scheduling.models while this package's
    # __init__, which imports this module, is still running.
    from conveyor.scheduling.models import Schedule, ScheduleOrigin

    declared = _declarations if declared is None else declared
    report = {"created": [], "updated": [], "retired": [], "skipped": []}
    for declaration in declared.values():
        try:
            with transaction.atomic():
                schedule = Schedule.objects.select_for_update().filter(name=declaration.name).first()
                if schedule is None:
                    schedule = Schedule(name=declaration.name, origin=ScheduleOrigin.CODE)
                    verdict = "created"
                elif schedule.origin != ScheduleOrigin.CODE:
                    logger.error(
                        "Schedule %s is declared in code but a runtime schedule has that name; left alone",
                        declaration.name,
                    )
                    report["skipped"].append(declaration.name)
                    continue
                elif schedule.code_definition != declaration.definition():
                    verdict = "updated"
                else:
                    continue
                _apply(schedule, declaration)
                schedule.validate_definition()
                schedule.save()
                report[verdict].append(declaration.name)
        except ConveyorError as exc:
            logger.error("Schedule %s declared in code is invalid and was not synced: %s", declaration.name, exc)
            report["skipped"].append(declaration.name)
        except IntegrityError:
            report["skipped"].append(declaration.name)  # another replica created it at the same moment
    for schedule in Schedule.objects.filter(origin=ScheduleOrigin.CODE, enabled=True).exclude(name__in=list(declared)):
        schedule.enabled = False
        schedule.save()
        report["retired"].append(schedule.name)
        logger.warning("Schedule %s is no longer declared in code; disabled", schedule.name)
    if any(report.values()):
        logger.info("Synced schedules from code: %s", {k: v for k, v in report.items() if v})
    return report
