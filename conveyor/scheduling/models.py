"""Schedules and their fires (Django app label `conveyor`; imported by conveyor.core.models).

Exactly-once lives here: a Fire row per (schedule, fire time), UNIQUE, written in the
same transaction as the task it produced. The leading scheduler also keeps a cursor
on each schedule (`next_fire_time`, the earliest fire time not yet handled), moved in
that same transaction, so a replica that takes over knows exactly where to resume.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Self

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from conveyor.errors import ConveyorError, InvalidSchedule
from conveyor.scheduling import triggers

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$"

# Fields that decide *when* a schedule fires: changing one restarts its fire times from now.
TIMING_FIELDS = ("cron", "timezone", "interval_seconds", "start_at", "enabled")
# Fields only the scheduler writes; an edit from the admin or the API never overwrites them
# with the stale copy it loaded (unless the edit changed the timing).
CURSOR_FIELDS = ("next_fire_time", "last_fire_time")


class ScheduleOrigin(models.TextChoices):
    CODE = "code"  # declared with @periodic next to the task; re-synced when the code changes
    RUNTIME = "runtime"  # created in the admin or through /api/v1/schedules


class Schedule(models.Model):
    name = models.CharField(max_length=200, unique=True, validators=[RegexValidator(NAME_PATTERN)])
    task_path = models.CharField(
        max_length=200, blank=True, help_text="Catalog name, e.g. demo.tasks.send_daily_digest (or a workflow)"
    )
    # Instead of a task: a workflow in its HTTP form ({"chain": [...]}, conveyor.workflows.canvas).
    workflow = models.JSONField(null=True, blank=True, help_text="Instead of a task: a workflow, as JSON")
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    queue_name = models.CharField(max_length=100, blank=True, default="", help_text="Empty: the task's queue")
    priority = models.SmallIntegerField(null=True, blank=True, help_text="Empty: the task's priority")
    cron = models.CharField(
        max_length=200,
        blank=True,
        default="",
        help_text="Crontab: minute hour day month weekday (0 and 7 = Sunday). Empty for an interval.",
    )
    timezone = models.CharField(max_length=64, default="UTC", help_text="IANA name the cron expression is read in")
    interval_seconds = models.PositiveIntegerField(null=True, blank=True, help_text="Empty for a cron schedule")
    start_at = models.DateTimeField(
        null=True, blank=True, help_text="Interval anchor: fires at start_at + k × interval (set on save if empty)"
    )
    enabled = models.BooleanField(default=True)
    coalesce = models.BooleanField(
        default=True, help_text="After downtime, run once for all missed fire times (the latest) instead of each"
    )
    misfire_grace_seconds = models.PositiveIntegerField(
        null=True, blank=True, help_text="A fire time later than this is skipped (recorded as missed). Empty: no limit"
    )
    origin = models.CharField(max_length=10, choices=ScheduleOrigin.choices, default=ScheduleOrigin.RUNTIME)
    # The declaration as last synced from code: re-applied only when the code changes,
    # so a runtime edit (e.g. disabling) survives restarts and deploys.
    code_definition = models.JSONField(null=True, blank=True, editable=False)
    next_fire_time = models.DateTimeField(null=True, blank=True, editable=False)
    last_fire_time = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        app_label = "conveyor"
        ordering = ["name"]
        indexes = [models.Index(fields=["enabled", "next_fire_time"], name="schedule_due_idx")]
        constraints = [
            models.CheckConstraint(
                condition=(Q(cron="") & Q(interval_seconds__isnull=False))
                | (~Q(cron="") & Q(interval_seconds__isnull=True)),
                name="schedule_cron_xor_interval",
            )
        ]

    def __str__(self):
        return self.name

    @classmethod
    def from_db(cls, db: str, field_names: Sequence[str], values: Sequence[Any], *args: Any, **kwargs: Any) -> Self:
        instance = super().from_db(db, field_names, values, *args, **kwargs)
        instance._loaded_timing = instance._timing()
        return instance

    def _timing(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in TIMING_FIELDS)

    @property
    def kind(self) -> str:
        return "cron" if self.cron else "interval"

    @property
    def expression(self) -> str:
        return f"{self.cron} ({self.timezone})" if self.cron else f"every {self.interval_seconds}s"

    def trigger(self) -> CronTrigger | triggers.EitherDayTrigger | IntervalTrigger:
        if bool(self.cron) == (self.interval_seconds is not None):
            raise InvalidSchedule("set exactly one of cron and interval_seconds")
        if self.cron:
            return triggers.cron_trigger(self.cron, self.timezone)
        return triggers.interval_trigger(self.interval_seconds, self.start_at or timezone.now())

    def validate_definition(self) -> None:
        """Raise InvalidSchedule / UnknownTask / InvalidArguments (ConveyorErrors) if this cannot fire."""
        # Late: conveyor.core.models imports this module, and submission imports conveyor.core.models.
        from conveyor import submission
        from conveyor.scheduling.firing import task_spec

        triggers.zone(self.timezone)
        self.trigger()
        if self.misfire_grace_seconds is not None and self.misfire_grace_seconds < 0:
            raise InvalidSchedule("misfire_grace_seconds must be >= 0")
        if self.workflow is not None:
            from conveyor.workflows import canvas, plan

            if self.task_path or self.args or self.kwargs or self.queue_name or self.priority is not None:
                raise InvalidSchedule("a schedule runs a task or a workflow: give the task's fields or `workflow`")
            plan.compile_tree(canvas.from_json(self.workflow))
            return
        if not self.task_path:
            raise InvalidSchedule("give the task to run (or a workflow)")
        submission.prepare(task_spec(self))

    def clean(self) -> None:
        try:
            self.validate_definition()
        except ConveyorError as exc:
            raise ValidationError(str(exc)) from None

    def reschedule(self, now: datetime | None = None) -> None:
        """Restart fire times from `now`: no catch-up for the old timing or the disabled period."""
        now = now or timezone.now()
        if self.interval_seconds is not None and self.start_at is None:
            self.start_at = triggers.ceil_second(now)
        self.next_fire_time = triggers.first_at_or_after(self.trigger(), now) if self.enabled else None

    def save(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("update_fields") is None:
            timing_changed = self._state.adding or getattr(self, "_loaded_timing", None) != self._timing()
            if timing_changed:
                self.reschedule()
            if not self._state.adding:
                skip = set(CURSOR_FIELDS) | {"id", "created_at"}
                fields = [f.name for f in self._meta.concrete_fields if f.name not in skip]
                if timing_changed:
                    fields.append("next_fire_time")
                kwargs["update_fields"] = fields
        super().save(*args, **kwargs)
        self._loaded_timing = self._timing()


class FireOutcome(models.TextChoices):
    ENQUEUED = "enqueued"  # a task was written (row + outbox) for this fire time
    MISSED = "missed"  # not run: later than misfire_grace_seconds, or folded by coalescing
    FAILED = "failed"  # could not build the task (task removed from code, arguments no longer valid)


class Fire(models.Model):
    """One handled fire time of a schedule. The unique key makes a second fire impossible."""

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="fires")
    fire_time = models.DateTimeField()
    outcome = models.CharField(max_length=10, choices=FireOutcome.choices)
    manual = models.BooleanField(default=False, help_text="Run now (admin or API), not a computed fire time")
    missed_before = models.PositiveIntegerField(
        default=0, help_text="Earlier fire times, since the previous fire, that were not run (coalesced or too late)"
    )
    task = models.ForeignKey("conveyor.TaskRecord", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Or the workflow it started, for a schedule whose target is a workflow.
    workflow = models.ForeignKey(
        "conveyor.Workflow", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now, help_text="When the fire was committed")

    class Meta:
        app_label = "conveyor"
        ordering = ["-fire_time"]
        constraints = [models.UniqueConstraint(fields=["schedule", "fire_time"], name="schedule_fire_time_unique")]
        indexes = [models.Index(fields=["fire_time"], name="fire_time_idx")]

    def __str__(self):
        return f"{self.schedule_id} @ {self.fire_time.isoformat()} {self.outcome}"
