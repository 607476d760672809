"""The outbox against the real RabbitMQ and PostgreSQL."""

import threading
from datetime import timedelta

import pika
import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connections
from django.utils import timezone

from conveyor import outbox, submission
from conveyor.core.models import OutboxEntry, TaskRecord
from conveyor.publisher import publisher
from tests.support.rabbitmq import purge_queues

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def queue_depth(queue):
    connection = pika.BlockingConnection(pika.URLParameters(settings.BROKER_URL))
    try:
        return connection.channel().queue_declare(queue, passive=True).method.message_count
    finally:
        connection.close()


def make_records(n, path="demo.tasks.noop", queue="reports"):
    records = [
        submission.prepare(submission.TaskSpec(task_path=path, args=[], kwargs={}, queue_name=queue)) for _ in range(n)
    ]
    return submission.submit_many(records)


def test_accepted_tasks_reach_the_queue_and_leave_the_outbox():
    purge_queues("reports")
    # Given 5 tasks accepted
    make_records(5)
    # When the publisher thread has handled them
    assert publisher.flush(10)
    # Then RabbitMQ confirmed all 5 (they are on the queue) and the outbox is empty
    assert queue_depth("reports") == 5
    assert OutboxEntry.objects.count() == 0
    purge_queues("reports")


def test_stopping_the_publisher_publishes_what_was_handed_over_and_closes_its_connection():
    purge_queues("reports")
    # Given tasks handed over to the publisher thread
    make_records(3)
    thread = publisher._thread
    # When the publisher is stopped (as at exit)
    assert publisher.stop()
    # Then they were published first, its thread ended and no connection of it is left open
    assert queue_depth("reports") == 3
    assert OutboxEntry.objects.count() == 0
    assert not thread.is_alive()
    # And the next hand-over starts a new thread that publishes as before
    make_records(2)
    assert publisher.flush(10)
    assert queue_depth("reports") == 5
    purge_queues("reports")


def test_relay_publishes_entries_whose_lease_ran_out():
    purge_queues("reports")
    # Given tasks whose publisher died before publishing (entry still leased, lease expired)
    records = [
        submission.prepare(submission.TaskSpec(task_path="demo.tasks.noop", args=[], kwargs={}, queue_name="reports"))
        for _ in range(3)
    ]
    for record in records:
        record.save()
        OutboxEntry.objects.create(
            task=record, available_at=timezone.now(), locked_until=timezone.now() - timedelta(seconds=1)
        )
    # When a relay sweeps once
    call_command("relay", once=True)
    # Then they are on the queue and gone from the outbox
    assert queue_depth("reports") == 3
    assert OutboxEntry.objects.count() == 0
    purge_queues("reports")


def test_two_relays_never_claim_the_same_entry():
    # Given 300 due entries nobody holds
    records = [
        submission.prepare(submission.TaskSpec(task_path="demo.tasks.noop", args=[], kwargs={})) for _ in range(300)
    ]
    TaskRecord.objects.bulk_create(records)
    OutboxEntry.objects.bulk_create([OutboxEntry(task=r, available_at=timezone.now()) for r in records])
    claimed = {0: [], 1: []}
    barrier = threading.Barrier(2)

    def relay(index):
        barrier.wait()
        try:
            while True:
                entries = outbox.claim_due(limit=20)
                if not entries:
                    break
                claimed[index] += [entry.id for entry in entries]
        finally:
            connections.close_all()

    # When two relays claim concurrently
    threads = [threading.Thread(target=relay, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    # Then every entry was claimed exactly once
    everything = claimed[0] + claimed[1]
    assert len(everything) == 300
    assert len(set(everything)) == 300
    assert claimed[0] and claimed[1]


def test_publisher_leaves_an_entry_whose_lease_ran_out_to_the_relay():
    purge_queues("reports")
    # Given an entry whose publisher held it so long that its lease ran out
    record = submission.prepare(
        submission.TaskSpec(task_path="demo.tasks.noop", args=[], kwargs={}, queue_name="reports")
    )
    record.save()
    entry = OutboxEntry.objects.create(
        task=record, available_at=timezone.now(), locked_until=timezone.now() - timedelta(seconds=1)
    )
    # When that publisher finally gets to it
    published = outbox.deliver([entry])
    # Then it does not publish (a relay may own it now), and the entry stays for the relay
    assert published == 0
    assert queue_depth("reports") == 0
    assert OutboxEntry.objects.filter(pk=entry.pk).exists()
