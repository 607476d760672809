"""Turning due fire times into tasks, each exactly once.

For every enabled schedule whose cursor (`next_fire_time`) is due, in one transaction:
lock the schedule row (SKIP LOCKED: a row another replica is firing is left to it),
list the due fire times from the cursor, decide which run (misfire grace, coalescing),
write each run as a TaskRecord + outbox entry (conveyor.submission, the API's durable
path) together with its Fire row (UNIQUE (schedule, fire_time)), and move the cursor.
A crash anywhere rolls all of it back; the broker is only touched after commit, so a
broker outage delays these tasks (the relay publishes them) but never loses a fire.

Missed fires (after downtime, a takeover, or a stall):
- misfire_grace_seconds: a fire time more than this late is not run. None = no limit.
- coalesce=True: of all due fire times, run only the latest (one catch-up run, not a
  burst); coalesce=False: run every due fire time within the grace, oldest first.
Every fire time that is not run is counted (Fire.missed_before, the misfires metric),
and when nothing runs a MISSED Fire row records it.
"""

import logging
from dataclasses import dataclass
from datetime import datetime

from apscheduler.triggers.base import BaseTrigger
from django.db import IntegrityError, transaction
from django.db.models import Min
from django.utils import timezone

from conveyor import submission
from conveyor.core.models import TaskSource
from conveyor.errors import ConveyorError
from conveyor.scheduling import triggers
from conveyor.scheduling.models import Fire, FireOutcome, Schedule

logger = logging.getLogger("conveyor.scheduler")

# Due fire times examined per schedule per pass: bounds one transaction after a long
# downtime on a fast schedule; the next pass continues from the moved cursor.
MAX_DUE_PER_PASS = 1000
# A FireResult's outcome when another replica had already fired that time (no Fire row written).
DUPLICATE = "duplicate"


@dataclass
class FireResult:
    schedule: str
    fire_time: datetime
    outcome: str  # a FireOutcome, or DUPLICATE when the unique key refused a second fire
    missed: int = 0  # fire times not run, counted with this result
    task_id: object = None
    manual: bool = False
    workflow_id: object = None  # a schedule whose target is a workflow
    committed_at: datetime | None = None

    @property
    def lag_seconds(self) -> float | None:
        """How late after its due time the task was durably enqueued (committed)."""
        if self.outcome != FireOutcome.ENQUEUED or self.manual or self.committed_at is None:
            return None
        return (self.committed_at - self.fire_time).total_seconds()


def task_spec(schedule: Schedule) -> submission.TaskSpec:
    return submission.TaskSpec(
        task_path=schedule.task_path,
        args=list(schedule.args or []),
        kwargs=dict(schedule.kwargs or {}),
        queue_name=schedule.queue_name or None,
        priority=schedule.priority,
    )


def due_fire_times(
    trigger: BaseTrigger, cursor: datetime | None, now: datetime, limit: int = MAX_DUE_PER_PASS
) -> tuple[list[datetime], datetime | None]:
    """([due fire times from cursor up to now], the first fire time not examined)."""
    times, fire_time = [], cursor
    while fire_time is not None and fire_time <= now and len(times) < limit:
        times.append(fire_time)
        fire_time = triggers.next_after(trigger, fire_time)
    return times, fire_time


def fire_due(now: datetime | None = None) -> list[FireResult]:
    """Fire every due schedule once; return a FireResult per handled fire."""
    now = now or timezone.now()
    due = (
        Schedule.objects.filter(enabled=True, next_fire_time__lte=now)
        .order_by("next_fire_time")
        .values_list("pk", flat=True)
    )
    results = []
    for pk in list(due):
        results.extend(_fire_schedule(pk, now))
    return results


def next_due_time() -> datetime | None:
    """The earliest cursor of an enabled schedule (None when nothing is scheduled)."""
    return Schedule.objects.filter(enabled=True).aggregate(due=Min("next_fire_time"))["due"]


def _fire_schedule(pk: int, now: datetime) -> list[FireResult]:
    with transaction.atomic():
        schedule = (
            Schedule.objects.select_for_update(skip_locked=True)
            .filter(pk=pk, enabled=True, next_fire_time__lte=now)
            .first()
        )
        if schedule is None:  # fired by another replica, edited, or disabled meanwhile
            return []
        try:
            trigger = schedule.trigger()
        except ConveyorError as exc:
            logger.error("Schedule %s cannot compute fire times (%s); disabling it", schedule.name, exc)
            schedule.enabled = False
            schedule.next_fire_time = None
            schedule.save(update_fields=["enabled", "next_fire_time"])
            return []
        times, following = due_fire_times(trigger, schedule.next_fire_time, now)
        caught_up = following is None or following > now

        def in_grace(fire_time: datetime) -> bool:
            grace = schedule.misfire_grace_seconds
            return grace is None or (now - fire_time).total_seconds() <= grace

        if schedule.coalesce:
            to_run = {times[-1]} if caught_up and in_grace(times[-1]) else set()
        else:
            to_run = {t for t in times if in_grace(t)}

        results, missed = [], 0
        for fire_time in times:
            if fire_time in to_run:
                results.append(_enqueue(schedule, fire_time, missed_before=missed))
                missed = 0
            else:
                missed += 1
        if missed:
            results.append(_record_missed(schedule, times[-1], missed))

        schedule.next_fire_time = following
        schedule.last_fire_time = times[-1]
        schedule.save(update_fields=["next_fire_time", "last_fire_time"])
    committed_at = timezone.now()
    for result in results:
        result.committed_at = committed_at
        if result.missed:
            logger.warning(
                "Schedule %s: %d fire time(s) up to %s not run (%s)",
                result.schedule,
                result.missed,
                result.fire_time.isoformat(),
                "coalesced" if schedule.coalesce else "past misfire grace",
            )
    return results


def _enqueue(schedule: Schedule, fire_time: datetime, *, missed_before: int = 0, manual: bool = False) -> FireResult:
    """Write the task and its Fire row in one savepoint; the unique key refuses a second fire."""
    try:
        if schedule.workflow is not None:
            return _start_workflow(schedule, fire_time, missed_before=missed_before, manual=manual)
        record = submission.prepare(task_spec(schedule))
    except ConveyorError as exc:
        if manual:
            raise
        logger.error("Schedule %s at %s: cannot build task: %s", schedule.name, fire_time.isoformat(), exc)
        return _write_fire(
            schedule,
            fire_time,
            FireOutcome.FAILED,
            missed=missed_before + 1,
            missed_before=missed_before,
            error=str(exc)[:2000],
        )
    record.schedule_name = schedule.name
    record.fire_time = fire_time
    try:
        with transaction.atomic():
            submission.submit_many([record], source=TaskSource.SCHEDULER)
            Fire.objects.create(
                schedule=schedule,
                fire_time=fire_time,
                outcome=FireOutcome.ENQUEUED,
                manual=manual,
                missed_before=missed_before,
                task=record,
            )
    except IntegrityError:
        if manual:
            raise
        # Another replica (or an earlier pass) already fired this time: exactly once wins.
        logger.warning("Schedule %s at %s was already fired; skipped", schedule.name, fire_time.isoformat())
        return FireResult(schedule.name, fire_time, DUPLICATE, missed=missed_before)
    return FireResult(
        schedule.name, fire_time, FireOutcome.ENQUEUED, missed=missed_before, task_id=record.id, manual=manual
    )


def _start_workflow(schedule: Schedule, fire_time: datetime, *, missed_before: int, manual: bool) -> FireResult:
    """A schedule whose target is a workflow: the workflow and its Fire row, in one savepoint."""
    from conveyor.workflows import canvas, plan, progress

    compiled = plan.compile_tree(canvas.from_json(schedule.workflow))  # a ConveyorError is a FAILED fire
    try:
        with transaction.atomic():
            workflow = progress.start(
                compiled,
                schedule.workflow,
                source=TaskSource.SCHEDULER,
                schedule_name=schedule.name,
                fire_time=fire_time,
            )
            Fire.objects.create(
                schedule=schedule,
                fire_time=fire_time,
                outcome=FireOutcome.ENQUEUED,
                manual=manual,
                missed_before=missed_before,
                workflow=workflow,
            )
    except IntegrityError:
        if manual:
            raise
        logger.warning("Schedule %s at %s was already fired; skipped", schedule.name, fire_time.isoformat())
        return FireResult(schedule.name, fire_time, DUPLICATE, missed=missed_before)
    return FireResult(
        schedule.name, fire_time, FireOutcome.ENQUEUED, missed=missed_before, workflow_id=workflow.id, manual=manual
    )


def _record_missed(schedule: Schedule, fire_time: datetime, missed: int) -> FireResult:
    return _write_fire(schedule, fire_time, FireOutcome.MISSED, missed=missed, missed_before=missed - 1)


def _write_fire(
    schedule: Schedule, fire_time: datetime, outcome: str, *, missed: int, missed_before: int, error: str = ""
) -> FireResult:
    try:
        with transaction.atomic():
            Fire.objects.create(
                schedule=schedule, fire_time=fire_time, outcome=outcome, missed_before=missed_before, error=error
            )
    except IntegrityError:
        return FireResult(schedule.name, fire_time, DUPLICATE)
    return FireResult(schedule.name, fire_time, outcome, missed=missed)


def run_now(schedule: Schedule) -> FireResult:
    """Fire a schedule immediately ("run now"), whatever its timing; the cursor is untouched.

    Raises a ConveyorError if the task (or workflow) cannot be built (unknown task, bad
    arguments). The result names the task, or the workflow, it started.
    """
    with transaction.atomic():
        return _enqueue(schedule, timezone.now(), manual=True)
