"""The worker records each run in the task row (StubBroker, real database)."""

import time

import pytest

from conveyor import submission
from conveyor.core.models import TaskRecord, TaskStatus
from tests.conftest import publish_pending_outbox

pytestmark = pytest.mark.django_db(transaction=True)


def submit(path, *args, **kwargs):
    record = submission.prepare(submission.TaskSpec(task_path=path, args=list(args), kwargs=kwargs))
    return submission.submit_many([record])[0]


def row_without_outbox(path, *args):
    """A task row that nothing publishes: the test delivers its message by hand."""
    return TaskRecord.objects.create(task_path=path, args=list(args), kwargs={})


def deliver(stub_broker, stub_worker, record, actor_name=None):
    from conveyor.messages import build_message

    message = build_message(record)
    if actor_name:
        message = message.copy(actor_name=actor_name)
    stub_broker.enqueue(message)
    stub_broker.join(record.queue_name, fail_fast=False)
    stub_worker.join()


def run_all(stub_broker, stub_worker, queue="default"):
    publish_pending_outbox()
    stub_broker.join(queue, fail_fast=False)
    stub_worker.join()


def run_until_settled(stub_broker, stub_worker, record, queue="default", timeout=30):
    """Run, publishing retries from the outbox as they fall due, until the task is final."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run_all(stub_broker, stub_worker, queue)
        record.refresh_from_db()
        if record.status in (TaskStatus.SUCCESSFUL, TaskStatus.FAILED, TaskStatus.CANCELLED):
            return
        time.sleep(0.05)
    raise AssertionError(f"task still {record.status} after {timeout}s")


def test_successful_task_records_return_value(stub_broker, stub_worker):
    # Given add(4, 6) accepted
    record = submit("demo.tasks.add", 4, 6)
    # When a worker runs it
    run_all(stub_broker, stub_worker)
    # Then the row says SUCCESSFUL with 10, one attempt, and who ran it
    record.refresh_from_db()
    assert record.status == TaskStatus.SUCCESSFUL
    assert record.return_value == 10
    assert record.attempts == 1
    assert len(record.worker_ids) == 1
    assert record.started_at <= record.finished_at


def test_failing_task_without_retries_is_failed_with_traceback(stub_broker, stub_worker):
    # Given a task that always raises and allows no retries
    record = submit("demo.tasks.fail", "boom")
    # When it runs
    run_all(stub_broker, stub_worker)
    # Then it is FAILED with the exception class and traceback, and it was dead-lettered
    record.refresh_from_db()
    assert record.status == TaskStatus.FAILED
    assert record.errors[0]["exception_class_path"] == "demo.tasks.DemoFailure"
    assert "boom" in record.errors[0]["traceback"]
    assert "dead-lettered to default.XQ" in record.failure_reason
    assert len(stub_broker.dead_letters_by_queue["default"]) == 1


def test_retries_with_backoff_until_success_keep_every_error(stub_broker, stub_worker):
    # Given a task that fails its first two attempts
    record = submit("demo.tasks.flaky", 2)
    # When the worker runs it (each retry waits in the outbox until its backoff is over)
    run_until_settled(stub_broker, stub_worker, record)
    # Then it ends SUCCESSFUL on the third attempt, with both failures recorded
    record.refresh_from_db()
    assert record.status == TaskStatus.SUCCESSFUL
    assert record.return_value == 3
    assert record.attempts == 3
    assert [e["attempt"] for e in record.errors] == [1, 2]


def test_cancelled_task_is_skipped_when_its_message_arrives(stub_broker, stub_worker):
    # Given a task cancelled after it was published
    record = row_without_outbox("demo.tasks.add", 1, 1)
    TaskRecord.objects.filter(id=record.id).update(status=TaskStatus.CANCELLED)
    # When the worker takes the message
    deliver(stub_broker, stub_worker, record)
    # Then the task does not run
    record.refresh_from_db()
    assert record.status == TaskStatus.CANCELLED
    assert record.attempts == 0


def test_duplicate_delivery_of_a_finished_task_does_not_run_it_again(stub_broker, stub_worker):
    # Given a task that already ran
    record = submit("demo.tasks.add", 2, 3)
    run_all(stub_broker, stub_worker)
    # When its message is delivered again (at-least-once)
    record.refresh_from_db()
    deliver(stub_broker, stub_worker, record)
    # Then it is not run a second time
    record.refresh_from_db()
    assert record.attempts == 1


def test_message_for_unknown_task_is_dead_lettered_and_row_says_why(stub_broker, stub_worker):
    # Given a task whose message names a task no worker knows
    record = row_without_outbox("demo.tasks.removed", 1, 1)
    # When the worker receives it
    deliver(stub_broker, stub_worker, record)
    # Then the message is dead-lettered and the row is FAILED saying why
    record.refresh_from_db()
    assert record.status == TaskStatus.FAILED
    assert "unknown task" in record.failure_reason
    assert len(stub_broker.dead_letters_by_queue["default"]) == 1


def test_message_without_a_task_record_is_dead_lettered(stub_broker, stub_worker):
    import dramatiq

    # Given a message published by something other than Conveyor
    stub_broker.enqueue(
        dramatiq.Message(queue_name="default", actor_name="demo.tasks.noop", args=(), kwargs={}, options={})
    )
    # When the worker receives it
    stub_broker.join("default", fail_fast=False)
    stub_worker.join()
    # Then it is dead-lettered, and the worker keeps going
    assert len(stub_broker.dead_letters_by_queue["default"]) == 1
    record = submit("demo.tasks.add", 1, 1)
    run_all(stub_broker, stub_worker)
    record.refresh_from_db()
    assert record.status == TaskStatus.SUCCESSFUL


def test_every_actor_has_a_time_limit_and_backoff_below_rabbitmq_consumer_timeout(stub_broker, settings):
    # RabbitMQ closes a channel holding a message unacked for 30 minutes (consumer_timeout).
    consumer_timeout_ms = 30 * 60 * 1000
    for name, actor in stub_broker.actors.items():
        assert 0 < actor.options["time_limit"] < consumer_timeout_ms, name
        assert actor.options["max_backoff"] < consumer_timeout_ms, name


def test_time_limit_stops_a_task_that_runs_too_long(stub_broker, stub_worker):
    # Given a sleep task whose actor allows 200 ms and no retries
    actor = stub_broker.get_actor("demo.tasks.sleep")
    old = dict(actor.options)
    actor.options.update(time_limit=200, max_retries=0)
    try:
        record = submit("demo.tasks.sleep", 3)
        # When it runs
        run_all(stub_broker, stub_worker)
    finally:
        actor.options.clear()
        actor.options.update(old)
    # Then it is stopped and FAILED with TimeLimitExceeded
    record.refresh_from_db()
    assert record.status == TaskStatus.FAILED
    assert record.errors[-1]["exception_class_path"].endswith("TimeLimitExceeded")
