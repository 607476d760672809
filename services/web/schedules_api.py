"""/api/v1/schedules: list, create, update, enable/disable, delete, run now, fire history.

Scopes: reading needs `read`; every change (and "run now") needs `admin`. Scheduled
tasks belong to no token (only admin tokens see them in /api/v1/tasks), so a `write`
token creating schedules could start tasks it may not see or cancel; admin only.
Changes take effect in the running scheduler within SCHEDULER_POLL_SECONDS.
"""

from datetime import datetime
from typing import Annotated, Any

from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from ninja import Field, Query, Router, Schema
from ninja.responses import Status
from pydantic import ConfigDict, WithJsonSchema

from conveyor.core.models import TaskRecord
from conveyor.errors import DeclaredInCode, ScheduleExists
from conveyor.scheduling import control, firing, triggers
from conveyor.scheduling.models import NAME_PATTERN, Fire, FireOutcome, Schedule, ScheduleOrigin
from conveyor.workflows import handle
from services.web.auth import require
from services.web.datetimes import AwareDateTime
from services.web.schemas import ERRORS, TaskOut, task_location, task_out
from services.web.workflows_api import WorkflowOut, workflow_location, workflow_out

router = Router(tags=["schedules"])

# The schema lists the names the server accepts (conveyor.scheduling.triggers.zone checks them).
TimeZoneName = Annotated[str, WithJsonSchema({"type": "string", "enum": sorted(triggers.time_zone_names())})]


class ScheduleFields(Schema):
    # strict: JSON types as the schema states them (false is not 0, "5" is not 5);
    # unknown fields are refused, never ignored.
    model_config = ConfigDict(extra="forbid", strict=True)

    task: str | None = Field(default=None, max_length=200, description="Catalog name, e.g. demo.tasks.add")
    workflow: dict[str, Any] | None = Field(
        default=None,
        description="Instead of a task: a workflow, as POST /api/v1/workflows takes it "
        '({"chain": [...]}, {"group": [...]} or {"chord": {...}})',
    )
    args: list[Any] | None = None
    kwargs: dict[str, Any] | None = None
    queue: str | None = Field(default=None, max_length=100, description="Default: the task's queue")
    priority: int | None = Field(default=None, ge=-100, le=100, description="Default: the task's priority")
    cron: str | None = Field(
        default=None, max_length=200, description="Crontab 'min hour day month weekday' (0 and 7 = Sunday)"
    )
    timezone: TimeZoneName | None = Field(default=None, description="IANA name for cron; default UTC")
    interval_seconds: int | None = Field(default=None, ge=1, le=366 * 86400, description="Instead of cron")
    start_at: AwareDateTime | None = Field(default=None, description="Interval anchor; default: next whole second")
    enabled: bool | None = None
    coalesce: bool | None = Field(default=None, description="After downtime run once, not once per missed time")
    misfire_grace_seconds: int | None = Field(
        default=None, ge=0, description="Skip fire times later than this; null = no limit"
    )


class ScheduleIn(ScheduleFields):
    name: str = Field(pattern=NAME_PATTERN, max_length=200)


class ScheduleOut(Schema):
    name: str
    task: str | None = Field(description="The task it runs; null when it runs a workflow")
    workflow: dict[str, Any] | None = Field(description="The workflow it runs; null when it runs a task")
    args: list[Any]
    kwargs: dict[str, Any]
    queue: str | None
    priority: int | None
    cron: str | None
    timezone: str
    interval_seconds: int | None
    start_at: datetime | None
    enabled: bool
    coalesce: bool
    misfire_grace_seconds: int | None
    origin: str = Field(description="code: declared with @periodic; runtime: created in the admin or this API")
    next_fire_time: datetime | None
    last_fire_time: datetime | None
    created_at: datetime
    updated_at: datetime


class FireOut(Schema):
    fire_time: datetime
    outcome: FireOutcome
    manual: bool
    missed_before: int
    task_id: str | None
    workflow_id: str | None = Field(default=None, description="The workflow it started, if it runs one")
    error: str
    created_at: datetime


def schedule_out(schedule):
    return {
        "name": schedule.name,
        "task": schedule.task_path or None,
        "workflow": schedule.workflow,
        "args": schedule.args,
        "kwargs": schedule.kwargs,
        "queue": schedule.queue_name or None,
        "priority": schedule.priority,
        "cron": schedule.cron or None,
        "timezone": schedule.timezone,
        "interval_seconds": schedule.interval_seconds,
        "start_at": schedule.start_at,
        "enabled": schedule.enabled,
        "coalesce": schedule.coalesce,
        "misfire_grace_seconds": schedule.misfire_grace_seconds,
        "origin": schedule.origin,
        "next_fire_time": schedule.next_fire_time,
        "last_fire_time": schedule.last_fire_time,
        "created_at": schedule.created_at,
        "updated_at": schedule.updated_at,
    }


# API field -> model field; None in the payload clears the nullable ones.
_FIELDS = {
    "task": "task_path",
    "workflow": "workflow",
    "args": "args",
    "kwargs": "kwargs",
    "queue": "queue_name",
    "priority": "priority",
    "cron": "cron",
    "timezone": "timezone",
    "interval_seconds": "interval_seconds",
    "start_at": "start_at",
    "enabled": "enabled",
    "coalesce": "coalesce",
    "misfire_grace_seconds": "misfire_grace_seconds",
}
_NOT_NULL = {
    "task": "",
    "args": [],
    "kwargs": {},
    "queue": "",
    "cron": "",
    "timezone": "UTC",
    "enabled": True,
    "coalesce": True,
}


def _apply(schedule, payload):
    for name in payload.model_fields_set & set(_FIELDS):
        value = getattr(payload, name)
        if value is None and name in _NOT_NULL:
            value = _NOT_NULL[name]
        setattr(schedule, _FIELDS[name], value)
    if "interval_seconds" in payload.model_fields_set and "start_at" not in payload.model_fields_set:
        schedule.start_at = None  # a new interval re-anchors at the next whole second
    schedule.validate_definition()


def _get(name, lock=False):
    return control.get(name, lock=lock)


@router.get("", response={200: list[ScheduleOut], **ERRORS}, summary="List schedules")
def list_schedules(request, enabled: bool | None = None):
    """Every schedule (declared in code and created at runtime), by name."""
    require(request, "read")
    queryset = Schedule.objects.all()
    if enabled is not None:
        queryset = queryset.filter(enabled=enabled)
    return [schedule_out(s) for s in queryset.order_by("name")]


@router.post("", response={201: ScheduleOut, **ERRORS}, summary="Create a schedule")
def create_schedule(request, payload: ScheduleIn):
    """Give exactly one of `cron` (with `timezone`) or `interval_seconds`. Fires from the next due time on."""
    require(request, "admin")
    schedule = Schedule(name=payload.name, origin=ScheduleOrigin.RUNTIME)
    _apply(schedule, payload)
    try:
        with transaction.atomic():
            schedule.save()
    except IntegrityError:
        raise ScheduleExists(f"a schedule named {payload.name!r} exists") from None
    return Status(201, schedule_out(schedule))


@router.get("/{name}", response={200: ScheduleOut, **ERRORS}, summary="Get a schedule")
def get_schedule(request, name: str):
    require(request, "read")
    return schedule_out(_get(name))


@router.patch("/{name}", response={200: ScheduleOut, **ERRORS}, summary="Update a schedule")
def update_schedule(request, name: str, payload: ScheduleFields):
    """Change any field; a change of timing (cron, timezone, interval, start_at, enabled)
    restarts its fire times from now (no catch-up for the old timing)."""
    require(request, "admin")
    with transaction.atomic():
        schedule = _get(name, lock=True)
        _apply(schedule, payload)
        schedule.save()
    return schedule_out(schedule)


def _set_enabled(name, enabled):
    return schedule_out(control.set_enabled(name, enabled))


@router.post("/{name}/enable", response={200: ScheduleOut, **ERRORS}, summary="Enable a schedule")
def enable_schedule(request, name: str):
    """Fires from its next due time on; fire times while it was disabled are not caught up."""
    require(request, "admin")
    return _set_enabled(name, True)


@router.post("/{name}/disable", response={200: ScheduleOut, **ERRORS}, summary="Disable a schedule")
def disable_schedule(request, name: str):
    require(request, "admin")
    return _set_enabled(name, False)


@router.delete("/{name}", response={204: None, **ERRORS}, summary="Delete a schedule")
def delete_schedule(request, name: str):
    """Deletes a runtime schedule and its fire history (its tasks stay). A schedule declared
    in code would come back at the next sync: disable it, or remove it from the code."""
    require(request, "admin")
    with transaction.atomic():
        schedule = _get(name, lock=True)
        if schedule.origin == ScheduleOrigin.CODE:
            raise DeclaredInCode(f"{name!r} is declared in code; disable it or remove it from the code")
        schedule.delete()
    return Status(204, None)


@router.post("/{name}/run", response={202: TaskOut | WorkflowOut, **ERRORS}, summary="Run a schedule now")
def run_schedule(request: HttpRequest, response: HttpResponse, name: str) -> Status:
    """Enqueue its task (or start its workflow) once, now, even if disabled; its timing is
    unchanged. The task records the schedule and the moment of the request as its fire time."""
    require(request, "admin")
    result = firing.run_now(_get(name))
    if result.workflow_id is not None:
        response["Location"] = workflow_location(result.workflow_id)
        return Status(202, workflow_out(handle.get(result.workflow_id)))
    record = TaskRecord.objects.get(id=result.task_id)
    response["Location"] = task_location(record)
    return Status(202, task_out(record))


class FireFilters(Schema):
    limit: int = Field(default=50, ge=1, le=500)
    outcome: FireOutcome | None = None


@router.get("/{name}/fires", response={200: list[FireOut], **ERRORS}, summary="Recent fires of a schedule")
def list_fires(request, name: str, filters: Query[FireFilters]):
    """Newest first: each handled fire time, its outcome (enqueued, missed, failed) and task."""
    require(request, "read")
    queryset = Fire.objects.filter(schedule=_get(name))
    if filters.outcome:
        queryset = queryset.filter(outcome=filters.outcome)
    return [
        {
            "fire_time": f.fire_time,
            "outcome": f.outcome,
            "manual": f.manual,
            "missed_before": f.missed_before,
            "task_id": str(f.task_id) if f.task_id else None,
            "workflow_id": str(f.workflow_id) if f.workflow_id else None,
            "error": f.error,
            "created_at": f.created_at,
        }
        for f in queryset.order_by("-fire_time")[: filters.limit]
    ]
