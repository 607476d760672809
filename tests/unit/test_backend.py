"""Conveyor as the django.tasks backend: enqueue, results, defer, signals, transactions."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.tasks import TaskResultStatus
from django.tasks.exceptions import TaskResultDoesNotExist
from django.tasks.signals import task_enqueued, task_finished, task_started
from django.utils import timezone

from conveyor.core.models import OutboxEntry, TaskRecord
from demo import tasks
from tests.conftest import publish_pending_outbox


@pytest.mark.django_db
def test_enqueue_returns_a_ready_result_backed_by_a_row():
    result = tasks.add.enqueue(2, 3)
    assert result.status == TaskResultStatus.READY
    record = TaskRecord.objects.get(id=result.id)
    assert (record.task_path, record.args, record.source) == ("demo.tasks.add", [2, 3], "django")


@pytest.mark.django_db
def test_enqueue_with_wrong_arguments_raises_before_anything_is_stored():
    from conveyor.errors import InvalidArguments

    with pytest.raises(InvalidArguments):
        tasks.add.enqueue(1)
    assert TaskRecord.objects.count() == 0


@pytest.mark.django_db
def test_priority_and_queue_from_using_are_stored():
    result = tasks.add.using(priority=50, queue_name="reports").enqueue(1, 1)
    record = TaskRecord.objects.get(id=result.id)
    assert (record.priority, record.queue_name) == (50, "reports")


@pytest.mark.django_db
def test_run_after_keeps_the_task_in_the_outbox_until_due():
    later = timezone.now() + timedelta(hours=1)
    result = tasks.noop.using(run_after=later).enqueue()
    entry = OutboxEntry.objects.get(task_id=result.id)
    assert entry.available_at == later
    assert publish_pending_outbox() == 0  # not due: nothing is published


@pytest.mark.django_db
def test_unknown_result_id_raises_does_not_exist():
    with pytest.raises(TaskResultDoesNotExist):
        tasks.add.get_result("00000000-0000-0000-0000-000000000000")
    with pytest.raises(TaskResultDoesNotExist):
        tasks.add.get_result("nonsense")


@pytest.mark.django_db(transaction=True)
def test_enqueue_in_a_rolled_back_transaction_leaves_nothing():
    # Given an enqueue inside a transaction that rolls back
    class Rollback(Exception):
        pass

    with pytest.raises(Rollback):
        with transaction.atomic():
            tasks.add.enqueue(1, 2)
            raise Rollback
    # Then there is no task and nothing to publish
    assert TaskRecord.objects.count() == 0
    assert OutboxEntry.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_result_from_another_process_view_and_all_signals(stub_broker, stub_worker):
    seen = []

    def record_signal(signal_name):
        def receiver(sender, task_result, **kwargs):
            seen.append((signal_name, task_result.status))

        return receiver

    receivers = {name: record_signal(name) for name in ("enqueued", "started", "finished")}
    task_enqueued.connect(receivers["enqueued"])
    task_started.connect(receivers["started"])
    task_finished.connect(receivers["finished"])
    try:
        # Given add(4, 6) enqueued through django.tasks
        result = tasks.add.enqueue(4, 6)
        # When a worker runs it
        publish_pending_outbox()
        stub_broker.join("default", fail_fast=False)
        stub_worker.join()
        # Then get_result and refresh see SUCCESSFUL with 10, and the three signals fired
        fetched = tasks.add.get_result(result.id)
        assert fetched.status == TaskResultStatus.SUCCESSFUL
        assert fetched.return_value == 10
        assert fetched.attempts == 1
        result.refresh()
        assert result.return_value == 10
        assert ("enqueued", TaskResultStatus.READY) in seen
        assert ("started", TaskResultStatus.RUNNING) in seen
        assert ("finished", TaskResultStatus.SUCCESSFUL) in seen
    finally:
        task_enqueued.disconnect(receivers["enqueued"])
        task_started.disconnect(receivers["started"])
        task_finished.disconnect(receivers["finished"])


@pytest.mark.django_db(transaction=True)
def test_aenqueue_and_aget_result():
    from asgiref.sync import async_to_sync

    async def enqueue_then_fetch():
        result = await tasks.add.aenqueue(1, 1)
        return result, await tasks.add.aget_result(result.id)

    result, fetched = async_to_sync(enqueue_then_fetch)()
    assert fetched.id == result.id
    assert fetched.status == TaskResultStatus.READY
    assert fetched.args == [1, 1]


@pytest.mark.django_db
def test_cancelled_task_reads_as_failed_with_task_cancelled_error():
    result = tasks.add.enqueue(1, 1)
    TaskRecord.objects.filter(id=result.id).update(status="CANCELLED")
    fetched = tasks.add.get_result(result.id)
    assert fetched.status == TaskResultStatus.FAILED
    assert fetched.errors[-1].exception_class_path == "conveyor.errors.TaskCancelled"
