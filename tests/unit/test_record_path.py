"""The worker's record path on the StubBroker: a message is settled only after its run's outcome is
committed, duplicates are decided by facts, and nothing strands a task."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import OperationalError
from django.utils import timezone

from conveyor import states, submission
from conveyor.core.models import OutboxEntry, TaskRecord, TaskStatus, WorkerProcess
from conveyor.messages import build_message
from services.worker.consumers import BufferedStubConsumer
from tests.conftest import publish_pending_outbox

pytestmark = pytest.mark.django_db(transaction=True)


def submit(path, *args):
    record = submission.prepare(submission.TaskSpec(task_path=path, args=list(args), kwargs={}))
    return submission.submit_many([record])[0]


def unsettled(stub_broker, queue="default"):
    """Messages taken from the stub queue and not yet acknowledged or dead-lettered."""
    return stub_broker.queues[queue].unfinished_tasks


def wait_until(predicate, timeout=15, what="the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def flaky_until(event, real):
    """A stand-in that raises a lost connection until `event` is set, then does the real thing."""

    def call(*args, **kwargs):
        if not event.is_set():
            raise OperationalError("server closed the connection unexpectedly")
        return real(*args, **kwargs)

    return call


def status_of(record):
    record.refresh_from_db()
    return record.status


def test_a_failing_start_write_leaves_the_message_unacknowledged_and_the_task_runs_once_it_succeeds(
    stub_broker, stub_worker, monkeypatch
):
    # Given a database that refuses the write that starts tasks
    database_back = threading.Event()
    monkeypatch.setattr(states, "claim", flaky_until(database_back, states.claim))
    record = submit("demo.tasks.add", 2, 3)
    drains = []
    real_drain = BufferedStubConsumer.drain
    monkeypatch.setattr(BufferedStubConsumer, "drain", lambda self: drains.append(1) or real_drain(self))
    # When the worker receives the task's message
    publish_pending_outbox()
    time.sleep(0.5)
    # Then the task has not run, and the message is held, not acknowledged
    assert status_of(record) == TaskStatus.READY
    assert unsettled(stub_broker) == 1
    # And the consumer waits for the database rather than spinning (a loop per poll, not thousands)
    assert len(drains) < 100
    # And once the database answers again, the task runs once and the message is settled
    database_back.set()
    stub_broker.join("default", fail_fast=False)
    stub_worker.join()
    record.refresh_from_db()
    assert (record.status, record.return_value, record.attempts) == (TaskStatus.SUCCESSFUL, 5, 1)
    assert unsettled(stub_broker) == 0


def test_a_failing_end_write_leaves_the_message_unacknowledged_until_the_outcome_is_stored(
    stub_broker, stub_worker, monkeypatch
):
    # Given a database that refuses the write that records how runs ended
    database_back = threading.Event()
    monkeypatch.setattr(states, "finish", flaky_until(database_back, states.finish))
    record = submit("demo.tasks.add", 4, 6)
    # When the task runs
    publish_pending_outbox()
    wait_until(lambda: status_of(record) == TaskStatus.RUNNING, what="the task to start")
    time.sleep(0.5)
    # Then its row still says RUNNING on this worker, and its message is not acknowledged
    assert status_of(record) == TaskStatus.RUNNING
    assert unsettled(stub_broker) == 1
    # And once the database answers again, the outcome is stored, then the message settled
    database_back.set()
    stub_broker.join("default", fail_fast=False)
    record.refresh_from_db()
    assert (record.status, record.return_value, record.attempts) == (TaskStatus.SUCCESSFUL, 10, 1)
    assert record.worker is None


def test_a_result_that_cannot_be_stored_fails_the_task_saying_why(stub_broker, stub_worker):
    # Given a task whose return value is not JSON PostgreSQL can store (1e308 + 1e308 is infinite)
    record = submit("demo.tasks.add", 1e308, 1e308)
    # When it runs
    publish_pending_outbox()
    stub_broker.join("default", fail_fast=False)
    stub_worker.join()
    # Then it is FAILED with an error that says the result could not be stored, not RUNNING for ever
    record.refresh_from_db()
    assert record.status == TaskStatus.FAILED
    assert record.errors[-1]["exception_class_path"] == "conveyor.errors.UnstorableResult"
    assert "cannot be stored" in record.errors[-1]["message"]
    assert "cannot be stored" in record.failure_reason
    # And its message was dead-lettered, once
    assert len(stub_broker.dead_letters_by_queue["default"]) == 1


def test_a_retry_exists_only_once_the_row_says_ready(stub_broker, stub_worker):
    # Given a task that fails its first attempt
    record = submit("demo.tasks.flaky", 1)
    # When the first attempt has run
    publish_pending_outbox()
    stub_broker.join("default", fail_fast=False)
    stub_worker.join()
    # Then the row is READY with the retry due after the backoff, in the outbox, and no
    # retry message was published anywhere (the delay queue is empty)
    record.refresh_from_db()
    assert (record.status, record.attempts, record.retries) == (TaskStatus.READY, 1, 1)
    entry = OutboxEntry.objects.get(task=record)
    assert entry.available_at == record.run_after and entry.locked_until is None
    assert stub_broker.queues["default.DQ"].qsize() == 0 and stub_broker.queues["default"].qsize() == 0
    # And once due, the retry runs and the task ends SUCCESSFUL on its second attempt
    wait_until(lambda: timezone.now() >= record.run_after, what="the backoff to end")
    publish_pending_outbox()
    stub_broker.join("default", fail_fast=False)
    stub_worker.join()
    record.refresh_from_db()
    assert (record.status, record.return_value, record.attempts) == (TaskStatus.SUCCESSFUL, 2, 2)


def running_on(worker_id, seen_seconds_ago, **fields):
    now = timezone.now()
    WorkerProcess.objects.create(
        id=worker_id, hostname="elsewhere", pid=1, started_at=now, seen_at=now - timedelta(seconds=seen_seconds_ago)
    )
    return TaskRecord.objects.create(
        task_path="demo.tasks.add",
        args=[1, 2],
        kwargs={},
        status=TaskStatus.RUNNING,
        attempts=1,
        worker=worker_id,
        worker_ids=[worker_id],
        started_at=now,
        **fields,
    )


def deliver(stub_broker, stub_worker, record):
    stub_broker.enqueue(build_message(record))
    stub_broker.join(record.queue_name, fail_fast=False)
    stub_worker.join()


def test_a_second_publish_of_a_task_running_on_a_live_worker_is_dropped_without_running(stub_broker, stub_worker):
    # Given a task RUNNING on another worker whose lease is fresh
    record = running_on("other:abc:1", seen_seconds_ago=1)
    # When a second copy of its message arrives
    deliver(stub_broker, stub_worker, record)
    # Then it is acknowledged and the task does not run again
    record.refresh_from_db()
    assert (record.status, record.attempts, record.worker) == (TaskStatus.RUNNING, 1, "other:abc:1")
    assert unsettled(stub_broker) == 0


def test_a_task_whose_worker_is_gone_is_taken_over_and_the_death_recorded(stub_broker, stub_worker, settings):
    # Given a task RUNNING on a worker whose lease ran out (the process died)
    record = running_on("dead:abc:1", seen_seconds_ago=settings.CONVEYOR_WORKER_LEASE_SECONDS + 5)
    # When its message comes back
    deliver(stub_broker, stub_worker, record)
    # Then another worker runs it, counting the death and saying so in the errors
    record.refresh_from_db()
    assert (record.status, record.return_value, record.attempts, record.worker_deaths) == (
        TaskStatus.SUCCESSFUL,
        3,
        2,
        1,
    )
    assert record.errors[-1]["exception_class_path"] == "conveyor.errors.WorkerDied"


def test_a_task_whose_workers_died_too_often_is_failed_and_dead_lettered(stub_broker, stub_worker, settings):
    # Given a task whose workers already died (the limit minus one) times while running it
    record = running_on(
        "dead:abc:2",
        seen_seconds_ago=settings.CONVEYOR_WORKER_LEASE_SECONDS + 5,
        worker_deaths=settings.CONVEYOR_MAX_WORKER_DEATHS - 1,
    )
    # When its message comes back once more
    deliver(stub_broker, stub_worker, record)
    # Then it is FAILED, saying how often its worker died, and its message is dead-lettered
    record.refresh_from_db()
    assert record.status == TaskStatus.FAILED
    assert f"worker died {settings.CONVEYOR_MAX_WORKER_DEATHS} times" in record.failure_reason
    assert record.attempts == 1
    assert len(stub_broker.dead_letters_by_queue["default"]) == 1


def test_outcomes_that_arrive_during_a_commit_are_committed_together(stub_broker, stub_worker, monkeypatch):
    # Given a commit that takes a while (the first one is held until we let it go)
    sizes, release, real = [], threading.Event(), states.finish

    def slow_first_commit(outcomes, worker):
        sizes.append(len(outcomes))
        if len(sizes) == 1:
            release.wait(10)
        return real(outcomes, worker)

    monkeypatch.setattr(states, "finish", slow_first_commit)
    # (as many tasks as the consumer's prefetch window: unsettled messages hold it)
    count = stub_worker.queue_prefetch
    records = [submit("demo.tasks.add", i, i) for i in range(count)]
    # When every task runs while that commit is in flight
    publish_pending_outbox()
    wait_until(lambda: sizes and len(stub_broker.recorder._pending) + sizes[0] == count, what="every run to end")
    release.set()
    stub_broker.join("default", fail_fast=False)
    stub_worker.join()
    # Then the outcomes that waited were written by one statement, and every task has its value
    assert sizes == [sizes[0], count - sizes[0]]
    values = TaskRecord.objects.filter(id__in=[r.id for r in records]).values_list("return_value", flat=True)
    assert sorted(values) == [2 * i for i in range(count)]
