"""The worker's record path on the real RabbitMQ and PostgreSQL: messages are settled only after
the outcome is committed, and neither a duplicate publish nor a peeked message runs beside the
original."""

import os
import threading
import time
from datetime import timedelta

import dramatiq
import pika
import pytest
from django.conf import settings
from django.db import OperationalError
from django.utils import timezone

from conveyor import states, submission
from conveyor.core.models import TaskRecord, TaskStatus, WorkerProcess
from conveyor.messages import build_message
from conveyor.queue_metrics import QueueCollector
from tests.support.processes import wait_for
from tests.support.rabbitmq import purge_queues, rabbitmqctl

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

QUEUES = ("default", "default.DQ", "default.XQ")


def messages_in(queue):
    """Ready plus unacknowledged messages of a queue."""
    out = rabbitmqctl("list_queues", "-p", os.environ["CONVEYOR_TEST_VHOST"], "--no-table-headers", "name", "messages")
    counts = dict(line.split("\t") for line in out.stdout.strip().splitlines() if "\t" in line)
    return int(counts.get(queue, 0))


@pytest.fixture
def worker():
    """A real Dramatiq worker on the real broker; started by the test when it is ready."""
    purge_queues(*QUEUES)
    started = []

    def start():
        w = dramatiq.Worker(dramatiq.get_broker(), worker_threads=2, worker_timeout=100, queues={"default"})
        w.start()
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()


def submit(path, *args):
    record = submission.prepare(submission.TaskSpec(task_path=path, args=list(args), kwargs={}))
    return submission.submit_many([record])[0]


def refused_until(event, real):
    def call(*args, **kwargs):
        if not event.is_set():
            raise OperationalError("the database system is starting up")
        return real(*args, **kwargs)

    return call


def test_while_the_end_write_fails_the_message_stays_unacknowledged(worker, monkeypatch):
    # Given a worker whose database refuses to record how runs ended
    database_back = threading.Event()
    monkeypatch.setattr(states, "finish", refused_until(database_back, states.finish))
    worker()
    # When a task runs
    record = submit("demo.tasks.add", 20, 22)
    wait_for(lambda: TaskRecord.objects.get(id=record.id).status == TaskStatus.RUNNING, 30, "the task to start")
    time.sleep(1)
    # Then RabbitMQ still holds its message, unacknowledged
    assert messages_in("default") == 1
    # And once the database answers, the outcome is stored and only then is the message gone
    database_back.set()
    wait_for(lambda: TaskRecord.objects.get(id=record.id).status == TaskStatus.SUCCESSFUL, 30, "the outcome")
    wait_for(lambda: messages_in("default") == 0, 30, "the acknowledgement")
    assert TaskRecord.objects.get(id=record.id).return_value == 42


def test_while_the_start_write_fails_nothing_runs_and_nothing_is_acknowledged(worker, monkeypatch):
    # Given a worker whose database refuses to record that runs start
    database_back = threading.Event()
    monkeypatch.setattr(states, "claim", refused_until(database_back, states.claim))
    worker()
    # When a task's message arrives
    record = submit("demo.tasks.add", 1, 1)
    wait_for(lambda: messages_in("default") == 1, 30, "the message")
    time.sleep(1)
    # Then the task does not run and its message stays with RabbitMQ
    assert TaskRecord.objects.get(id=record.id).status == TaskStatus.READY
    assert messages_in("default") == 1
    # And once the database answers, it runs once and only then is the message gone
    database_back.set()
    wait_for(lambda: TaskRecord.objects.get(id=record.id).status == TaskStatus.SUCCESSFUL, 30, "the task")
    wait_for(lambda: messages_in("default") == 0, 30, "the acknowledgement")
    assert TaskRecord.objects.get(id=record.id).attempts == 1


def test_a_result_that_cannot_be_stored_ends_failed_and_its_message_is_dead_lettered(worker):
    # Given a task whose return value PostgreSQL cannot store as JSON (1e308 + 1e308 is infinite)
    worker()
    # When it runs on a real worker
    record = submit("demo.tasks.add", 1e308, 1e308)
    # Then it ends FAILED saying why, instead of staying RUNNING with its message acknowledged
    wait_for(lambda: TaskRecord.objects.get(id=record.id).status == TaskStatus.FAILED, 30, "the failure")
    record.refresh_from_db()
    assert record.errors[-1]["exception_class_path"] == "conveyor.errors.UnstorableResult"
    assert "cannot be stored" in record.failure_reason
    assert record.worker is None
    # And its message went to the dead-letter queue, once, and left the work queue
    wait_for(lambda: messages_in("default.XQ") == 1, 30, "the dead letter")
    assert messages_in("default") == 0


def test_a_retry_is_not_lost_when_the_end_write_is_slower_than_the_backoff(worker, monkeypatch):
    # Given end writes that take longer than the retry backoff (100 ms in tests)
    real = states.finish

    def slow(outcomes, worker_id):
        time.sleep(1.0)
        return real(outcomes, worker_id)

    monkeypatch.setattr(states, "finish", slow)
    worker()
    # When a task fails once and is retried
    record = submit("demo.tasks.flaky", 1)
    # Then the retry runs once the row is READY, and the task ends SUCCESSFUL on attempt 2
    wait_for(lambda: TaskRecord.objects.get(id=record.id).status == TaskStatus.SUCCESSFUL, 60, "the retried task")
    record.refresh_from_db()
    assert (record.attempts, record.return_value, len(record.errors)) == (2, 2, 1)


def running_elsewhere():
    """A task RUNNING on another worker process with a fresh lease (that process is not ours)."""
    now = timezone.now()
    WorkerProcess.objects.create(id="elsewhere:abc:1", hostname="elsewhere", pid=1, started_at=now, seen_at=now)
    return TaskRecord.objects.create(
        task_path="demo.tasks.add",
        args=[1, 2],
        kwargs={},
        status=TaskStatus.RUNNING,
        attempts=1,
        worker="elsewhere:abc:1",
        worker_ids=["elsewhere:abc:1"],
        started_at=now,
    )


def publish_copy(record):
    dramatiq.get_broker().enqueue(build_message(record))


def peek(queue):
    """What a monitoring tool that 'peeks' does: basic.get, then basic.nack with requeue."""
    connection = pika.BlockingConnection(pika.URLParameters(settings.BROKER_URL))
    try:
        channel = connection.channel()
        method, _, _ = channel.basic_get(queue, auto_ack=False)
        assert method is not None
        channel.basic_nack(method.delivery_tag, requeue=True)
    finally:
        connection.close()


def test_a_second_publish_of_a_running_task_is_acknowledged_and_never_run(worker):
    # Given a task running on another live worker
    record = running_elsewhere()
    worker()
    # When a second copy of its message is published
    publish_copy(record)
    # Then the copy is acknowledged, and the task did not run here
    wait_for(lambda: messages_in("default") == 0, 30, "the copy to be acknowledged")
    record.refresh_from_db()
    assert (record.status, record.attempts, record.worker_ids) == (TaskStatus.RUNNING, 1, ["elsewhere:abc:1"])


def test_a_peeked_copy_waits_for_the_run_it_duplicates_and_never_runs_beside_it(worker):
    # Given a task running on another live worker, and a copy of its message that was
    # peeked (so RabbitMQ marks it redelivered, as if it were the running worker's own)
    record = running_elsewhere()
    publish_copy(record)
    wait_for(lambda: messages_in("default") == 1, 30, "the copy")
    peek("default")
    # When a worker receives it
    worker()
    time.sleep(1.5)
    # Then it does not run it while the original runs, and keeps the message meanwhile
    record.refresh_from_db()
    assert (record.status, record.attempts) == (TaskStatus.RUNNING, 1)
    assert messages_in("default") == 1
    # And when the original run ends, the copy is acknowledged without running
    TaskRecord.objects.filter(id=record.id).update(
        status=TaskStatus.SUCCESSFUL, worker=None, finished_at=timezone.now()
    )
    wait_for(lambda: messages_in("default") == 0, 30, "the copy to be acknowledged")
    assert TaskRecord.objects.get(id=record.id).attempts == 1


def test_a_redelivered_copy_takes_over_once_the_running_worker_is_gone(worker, settings):
    # Given a task running on a worker whose lease then runs out, and its message come back
    record = running_elsewhere()
    publish_copy(record)
    wait_for(lambda: messages_in("default") == 1, 30, "the copy")
    peek("default")
    worker()
    time.sleep(0.5)
    WorkerProcess.objects.filter(id="elsewhere:abc:1").update(
        seen_at=timezone.now() - timedelta(seconds=settings.CONVEYOR_WORKER_LEASE_SECONDS + 1)
    )
    # When the worker asks again about the message it kept; Then it runs the task, once
    wait_for(lambda: TaskRecord.objects.get(id=record.id).status == TaskStatus.SUCCESSFUL, 30, "the takeover")
    record.refresh_from_db()
    assert (record.attempts, record.worker_deaths, record.return_value) == (2, 1, 3)


def test_reading_queue_metrics_never_touches_a_message():
    # Given a message waiting in a queue nobody consumes
    purge_queues(*QUEUES)
    dramatiq.get_broker().declare_queue("default", ensure=True)
    record = submit("demo.tasks.noop")
    publish_copy(record)
    wait_for(lambda: messages_in("default") >= 1, 30, "the message")
    # When the queue metrics are read, as a Prometheus scrape does
    list(QueueCollector().collect())
    # Then the message is as it was: not redelivered
    connection = pika.BlockingConnection(pika.URLParameters(settings.BROKER_URL))
    try:
        channel = connection.channel()
        method, _, _ = channel.basic_get("default", auto_ack=True)
        assert method is not None and method.redelivered is False
    finally:
        connection.close()
    purge_queues(*QUEUES)
