"""A broker outage delays scheduled tasks but never loses a fire."""

import pytest

from conveyor.core.models import OutboxEntry, TaskRecord
from conveyor.scheduling.models import Schedule
from tests.scheduler.support import Scheduler
from tests.support.processes import free_port, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_fires_are_stored_with_their_outbox_entry_while_the_broker_is_unreachable():
    # Given a 1-second schedule and a scheduler whose broker refuses connections
    Schedule.objects.create(name="no-broker", task_path="demo.tasks.noop", interval_seconds=1, coalesce=False)
    scheduler = Scheduler("scheduler", BROKER_URL=f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F").start()
    try:
        # When it fires
        wait_for(lambda: TaskRecord.objects.filter(schedule_name="no-broker").count() >= 3, 30, "fires")
    finally:
        scheduler.stop()
    # Then every fired task is in the database with an outbox entry the relay will publish
    tasks = TaskRecord.objects.filter(schedule_name="no-broker")
    assert tasks.count() >= 3
    assert OutboxEntry.objects.filter(task__in=tasks).count() == tasks.count()
