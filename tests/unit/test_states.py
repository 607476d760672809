"""conveyor.states decides which status changes are allowed, for every caller."""

import pytest
from django.utils import timezone

from conveyor import states
from conveyor.core.models import OutboxEntry, TaskRecord, TaskStatus
from conveyor.errors import NotCancellable, NotRetryable, TaskNotFound, UnknownTask

pytestmark = pytest.mark.django_db


def task(status, path="demo.tasks.add"):
    return TaskRecord.objects.create(task_path=path, args=[1, 2], kwargs={}, status=status)


def test_cancel_turns_a_ready_task_cancelled_with_its_reason():
    record = task(TaskStatus.READY)
    states.cancel(record.id, reason="by test")
    record.refresh_from_db()
    assert (record.status, record.failure_reason) == (TaskStatus.CANCELLED, "by test")
    assert record.finished_at is not None


@pytest.mark.parametrize("status", [TaskStatus.RUNNING, TaskStatus.SUCCESSFUL, TaskStatus.FAILED, TaskStatus.CANCELLED])
def test_cancel_refuses_any_task_that_is_not_ready(status):
    record = task(status)
    with pytest.raises(NotCancellable):
        states.cancel(record.id, reason="by test")
    record.refresh_from_db()
    assert record.status == status


def test_cancel_many_cancels_only_the_ready_ones():
    ready, running = task(TaskStatus.READY), task(TaskStatus.RUNNING)
    assert states.cancel_many([ready.id, running.id], reason="bulk") == 1
    assert TaskRecord.objects.get(id=running.id).status == TaskStatus.RUNNING


@pytest.mark.parametrize("status", [TaskStatus.FAILED, TaskStatus.CANCELLED])
def test_retry_puts_a_failed_or_cancelled_task_back_with_an_outbox_entry(status):
    record = task(status)
    states.retry(record.id)
    record.refresh_from_db()
    assert (record.status, record.finished_at) == (TaskStatus.READY, None)
    assert OutboxEntry.objects.filter(task=record).count() == 1


@pytest.mark.parametrize("status", [TaskStatus.READY, TaskStatus.RUNNING, TaskStatus.SUCCESSFUL])
def test_retry_refuses_a_task_that_did_not_fail(status):
    record = task(status)
    with pytest.raises(NotRetryable):
        states.retry(record.id)
    assert not OutboxEntry.objects.filter(task=record).exists()


def test_retry_refuses_a_task_no_longer_in_the_catalog():
    # Given a failed task whose code was removed (the admin used to skip this check)
    record = task(TaskStatus.FAILED, path="demo.tasks.removed")
    with pytest.raises(UnknownTask):
        states.retry(record.id)
    assert TaskRecord.objects.get(id=record.id).status == TaskStatus.FAILED


def test_a_missing_task_is_task_not_found():
    with pytest.raises(TaskNotFound):
        states.cancel("00000000-0000-0000-0000-000000000000", reason="x")
    with pytest.raises(TaskNotFound):
        states.retry("not-a-uuid")


def test_progress_is_recorded_only_while_running():
    running, done = task(TaskStatus.RUNNING), task(TaskStatus.SUCCESSFUL)
    assert states.set_progress(running.id, {"done": 1}) is True
    assert states.set_progress(done.id, {"done": 1}) is False
    assert TaskRecord.objects.get(id=done.id).progress is None


def test_dead_letter_never_overwrites_a_success():
    done = task(TaskStatus.SUCCESSFUL)
    waiting = task(TaskStatus.READY)
    assert states.dead_letter(done.id, "gone") is False
    assert states.dead_letter(waiting.id, "gone") is True
    assert TaskRecord.objects.get(id=waiting.id).failure_reason == "gone"
    assert TaskRecord.objects.get(id=done.id).status == TaskStatus.SUCCESSFUL


def test_the_admin_retry_action_uses_the_same_guard(admin_client):
    # Given a failed task whose code was removed, and one that can run again
    gone, fine = task(TaskStatus.FAILED, path="demo.tasks.removed"), task(TaskStatus.FAILED)
    # When an admin retries both
    admin_client.post(
        "/admin/conveyor/taskrecord/",
        {"action": "retry", "_selected_action": [str(gone.id), str(fine.id)]},
    )
    # Then only the one still in the catalog is back
    assert TaskRecord.objects.get(id=fine.id).status == TaskStatus.READY
    assert TaskRecord.objects.get(id=gone.id).status == TaskStatus.FAILED
    assert timezone.now()
