"""A real Dramatiq worker on the real RabbitMQ: poison messages never stop it."""

import os

import dramatiq
import pika
import pytest
from django.conf import settings

from conveyor import metrics, submission
from conveyor.core.models import TaskRecord, TaskStatus
from tests.support.processes import wait_for
from tests.support.rabbitmq import purge_queues

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def channel():
    connection = pika.BlockingConnection(pika.URLParameters(settings.BROKER_URL))
    return connection, connection.channel()


@pytest.fixture
def rabbit_worker():
    # Messages earlier tests left in the session's vhost (their rows rolled back) would be
    # dead-lettered as "no_record" while a test counts default.XQ.
    purge_queues("default", "default.DQ", "default.XQ")
    broker = dramatiq.get_broker()
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=100, queues={"default"})
    worker.start()
    yield worker
    worker.stop()


def xq_depth():
    connection, ch = channel()
    try:
        return ch.queue_declare("default.XQ", passive=True).method.message_count
    finally:
        connection.close()


def test_undecodable_message_is_dead_lettered_counted_and_the_worker_keeps_running(rabbit_worker):
    # (the worker declares its queues as it starts)
    wait_for(lambda: xq_depth() >= 0, 30, "the worker to declare its queues")
    connection, ch = channel()
    try:
        before_xq = xq_depth()
        before_count = metrics.DEAD_LETTERS.labels(reason="undecodable")._value.get()
        # Given a message that is not a Dramatiq message at all
        ch.basic_publish("", "default", b"\x00\x01 not json", pika.BasicProperties(delivery_mode=2))
        # When the worker receives it
        wait_for(lambda: xq_depth() == before_xq + 1, 30, "the message in default.XQ")
        # Then it is counted as undecodable, and the worker still runs real tasks
        assert metrics.DEAD_LETTERS.labels(reason="undecodable")._value.get() == before_count + 1
        record = submission.submit_many([submission.prepare(submission.TaskSpec("demo.tasks.add", [20, 22], {}))])[0]
        wait_for(lambda: TaskRecord.objects.get(id=record.id).status == TaskStatus.SUCCESSFUL, 30, "the next task")
        assert TaskRecord.objects.get(id=record.id).return_value == 42
    finally:
        connection.close()


def test_fresh_duplicate_of_a_running_task_is_skipped(rabbit_worker):
    from conveyor.messages import build_message

    # Given a task another worker is running (its row says RUNNING)
    record = TaskRecord.objects.create(
        task_path="demo.tasks.add", args=[1, 2], kwargs={}, status=TaskStatus.RUNNING, attempts=1
    )
    # When a second, freshly published copy of its message arrives (not a redelivery)
    dramatiq.get_broker().enqueue(build_message(record))
    # Then the worker acknowledges it without running the task again
    wait_for(lambda: queue_messages("default") == 0, 30, "the duplicate to be consumed and acknowledged")
    record.refresh_from_db()
    assert record.attempts == 1
    assert record.status == TaskStatus.RUNNING


def queue_messages(queue):
    """Ready plus unacknowledged messages (passive declares count only the ready ones)."""
    from tests.support.rabbitmq import rabbitmqctl

    out = rabbitmqctl(
        "list_queues", "-p", os.environ["CONVEYOR_TEST_VHOST"], "--no-table-headers", "name", "messages"
    ).stdout
    counts = dict(line.split("\t") for line in out.strip().splitlines() if "\t" in line)
    return int(counts[queue])
