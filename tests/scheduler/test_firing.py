"""Firing due schedules (conveyor.scheduling.firing) against the real PostgreSQL test database."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import IntegrityError, transaction

from conveyor.core.models import OutboxEntry, TaskRecord, TaskSource
from conveyor.scheduling import firing
from conveyor.scheduling.models import Fire, FireOutcome, Schedule

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def interval_schedule(**fields):
    """A 60-second schedule anchored at T0 whose cursor sits at T0."""
    schedule = Schedule.objects.create(
        name=fields.pop("name", "every-minute"),
        task_path="demo.tasks.add",
        args=[4, 6],
        interval_seconds=60,
        start_at=T0,
        **fields,
    )
    schedule.next_fire_time = T0
    schedule.save(update_fields=["next_fire_time"])
    return schedule


def test_a_due_fire_goes_through_the_durable_path():
    # Given a schedule due at T0
    schedule = interval_schedule()
    # When the scheduler passes just after T0
    results = firing.fire_due(now=T0 + timedelta(seconds=1))
    # Then one task row, with its outbox entry, records the schedule and fire time
    (task,) = TaskRecord.objects.all()
    assert (task.task_path, task.args, task.source) == ("demo.tasks.add", [4, 6], TaskSource.SCHEDULER)
    assert (task.schedule_name, task.fire_time) == ("every-minute", T0)
    assert OutboxEntry.objects.filter(task=task).exists()
    assert [(r.outcome, r.fire_time) for r in results] == [(FireOutcome.ENQUEUED, T0)]
    # and the cursor moved to the next fire time
    schedule.refresh_from_db()
    assert (schedule.last_fire_time, schedule.next_fire_time) == (T0, T0 + timedelta(seconds=60))


def test_nothing_fires_before_the_due_time():
    interval_schedule()
    assert firing.fire_due(now=T0 - timedelta(microseconds=1)) == []
    assert not TaskRecord.objects.exists()


def test_after_downtime_coalesce_runs_once_for_the_latest_missed_time():
    # Given a coalescing schedule and ten minutes without a scheduler
    schedule = interval_schedule(coalesce=True)
    # When the scheduler comes back
    results = firing.fire_due(now=T0 + timedelta(minutes=9, seconds=30))
    # Then one catch-up task, for the latest due time, and the other nine counted as missed
    assert list(TaskRecord.objects.values_list("fire_time", flat=True)) == [T0 + timedelta(minutes=9)]
    (result,) = results
    assert result.missed == 9
    assert Fire.objects.get().missed_before == 9
    schedule.refresh_from_db()
    assert schedule.next_fire_time == T0 + timedelta(minutes=10)


def test_after_downtime_without_coalesce_every_missed_time_runs():
    interval_schedule(coalesce=False)
    firing.fire_due(now=T0 + timedelta(minutes=9, seconds=30))
    times = sorted(TaskRecord.objects.values_list("fire_time", flat=True))
    assert times == [T0 + timedelta(minutes=k) for k in range(10)]


def test_fire_times_past_the_grace_are_skipped_and_recorded():
    # Given a schedule that may be at most 120 s late, not coalescing, after 10 minutes down
    interval_schedule(coalesce=False, misfire_grace_seconds=120)
    results = firing.fire_due(now=T0 + timedelta(minutes=9, seconds=30))
    # Then only the fire times within 120 s run (8 and 9 minutes past)
    times = sorted(TaskRecord.objects.values_list("fire_time", flat=True))
    assert times == [T0 + timedelta(minutes=8), T0 + timedelta(minutes=9)]
    assert sum(r.missed for r in results) == 8


def test_a_fire_entirely_past_the_grace_leaves_a_missed_record_and_no_task():
    interval_schedule(coalesce=True, misfire_grace_seconds=10)
    firing.fire_due(now=T0 + timedelta(minutes=2, seconds=30))
    assert not TaskRecord.objects.exists()
    fire = Fire.objects.get()
    assert (fire.outcome, fire.fire_time, fire.missed_before) == (FireOutcome.MISSED, T0 + timedelta(minutes=2), 2)


def test_a_fire_time_cannot_produce_a_second_task():
    # Given a fire time already fired (e.g. by another replica) and a cursor that points at it again
    schedule = interval_schedule()
    firing.fire_due(now=T0 + timedelta(seconds=1))
    Schedule.objects.filter(pk=schedule.pk).update(next_fire_time=T0)
    # When it is due again
    results = firing.fire_due(now=T0 + timedelta(seconds=2))
    # Then the unique key refuses it and there is still one task
    assert [r.outcome for r in results] == ["duplicate"]
    assert TaskRecord.objects.count() == 1
    # and the database itself refuses a second Fire row for that time
    with pytest.raises(IntegrityError), transaction.atomic():
        Fire.objects.create(schedule=schedule, fire_time=T0, outcome=FireOutcome.ENQUEUED)


def test_an_edit_from_a_stale_copy_does_not_move_the_cursor_back():
    # Given an admin form loaded before the scheduler fired
    schedule = interval_schedule()
    stale = Schedule.objects.get(pk=schedule.pk)
    firing.fire_due(now=T0 + timedelta(seconds=1))
    # When it saves a change that is not about timing
    stale.args = [1, 2]
    stale.save()
    # Then the cursor the scheduler wrote survives
    schedule.refresh_from_db()
    assert (schedule.args, schedule.next_fire_time) == ([1, 2], T0 + timedelta(seconds=60))


def test_a_schedule_whose_task_disappeared_records_a_failed_fire():
    schedule = interval_schedule()
    Schedule.objects.filter(pk=schedule.pk).update(task_path="demo.tasks.removed")
    results = firing.fire_due(now=T0 + timedelta(seconds=1))
    assert [r.outcome for r in results] == [FireOutcome.FAILED]
    assert "unknown task" in Fire.objects.get().error
    assert not TaskRecord.objects.exists()


def test_disabled_schedules_do_not_fire():
    schedule = interval_schedule()
    schedule.enabled = False
    schedule.save()
    assert schedule.next_fire_time is None
    assert firing.fire_due(now=T0 + timedelta(minutes=5)) == []


def test_run_now_fires_once_outside_the_timing():
    schedule = interval_schedule()
    record = TaskRecord.objects.get(id=firing.run_now(schedule).task_id)
    fire = Fire.objects.get()
    assert fire.manual and fire.task_id == record.id and record.schedule_name == "every-minute"
    schedule.refresh_from_db()
    assert schedule.next_fire_time == T0  # untouched
