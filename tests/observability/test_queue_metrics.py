"""Queue depth from the real RabbitMQ (test vhost), the oldest waiting task from the database."""

import secrets
import time
from datetime import timedelta

import dramatiq
import pika
import pytest
from django.utils import timezone
from dramatiq.brokers.rabbitmq import RabbitmqBroker

from conveyor.core.models import TaskRecord, TaskStatus
from conveyor.queue_metrics import QueueCollector

pytestmark = pytest.mark.integration


@pytest.fixture
def idle_queue(settings):
    """A queue of our own that no worker consumes, set as Conveyor's only queue."""
    name = f"obs_{secrets.token_hex(4)}"
    broker = RabbitmqBroker(url=settings.BROKER_URL, confirm_delivery=True, max_priority=10)
    settings.CONVEYOR_QUEUES = [name]
    yield broker, name
    broker.flush(name)
    channel = broker.channel
    for queue in (name, f"{name}.DQ", f"{name}.XQ"):
        channel.queue_delete(queue)
    broker.close()


def message(queue, age_seconds=0.0, **options):
    return dramatiq.Message(
        queue_name=queue,
        actor_name="demo.tasks.add",
        args=(1, 2),
        kwargs={},
        options=options,
        message_timestamp=int((time.time() - age_seconds) * 1000),
    )


def samples(collector):
    found = {}
    for family in collector.collect():
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


@pytest.mark.django_db
def test_depth_by_state_and_consumers(idle_queue):
    broker, queue = idle_queue
    # Given three waiting messages, one delayed (retry backoff) and one dead letter
    for _ in range(3):
        broker.enqueue(message(queue))
    broker.enqueue(message(queue), delay=600_000)
    channel = broker.channel
    channel.basic_publish("", f"{queue}.XQ", b"{}", pika.BasicProperties(delivery_mode=2))
    # When the collector reads the broker
    found = samples(QueueCollector())
    # Then each state is counted in its own series, and no one consumes the queue
    assert found[("conveyor_queue_messages", (("queue", queue), ("state", "ready")))] == 3
    assert found[("conveyor_queue_messages", (("queue", queue), ("state", "delayed")))] == 1
    assert found[("conveyor_queue_messages", (("queue", queue), ("state", "dead_letter")))] == 1
    assert found[("conveyor_queue_consumers", (("queue", queue),))] == 0
    assert found[("conveyor_queue_collector_up", ())] == 1


def waiting_task(queue, enqueued_seconds_ago, *, due_seconds_ago=None, status=TaskStatus.READY):
    now = timezone.now()
    record = TaskRecord.objects.create(
        task_path="demo.tasks.add",
        args=[1, 2],
        kwargs={},
        queue_name=queue,
        status=status,
        run_after=None if due_seconds_ago is None else now - timedelta(seconds=due_seconds_ago),
    )
    # enqueued_at is set on insert (auto_now_add): move it back afterwards
    TaskRecord.objects.filter(id=record.id).update(enqueued_at=now - timedelta(seconds=enqueued_seconds_ago))
    return record


@pytest.mark.django_db
def test_oldest_age_is_how_long_the_oldest_ready_task_has_waited(idle_queue):
    _, queue = idle_queue
    # Given a task waiting for two minutes, a newer one, and a running one from an hour ago
    waiting_task(queue, 120)
    waiting_task(queue, 5)
    waiting_task(queue, 3600, status=TaskStatus.RUNNING)
    # When the collector reads the figures
    age = samples(QueueCollector())[("conveyor_queue_oldest_message_age_seconds", (("queue", queue),))]
    # Then the age is the oldest waiting task's, whether its message is in RabbitMQ or still in the outbox
    assert 120 <= age < 180


@pytest.mark.django_db
def test_a_retried_task_ages_from_the_end_of_its_backoff(idle_queue):
    _, queue = idle_queue
    # Given a task accepted an hour ago whose retry backoff ended 10 s ago
    waiting_task(queue, 3600, due_seconds_ago=10)
    age = samples(QueueCollector())[("conveyor_queue_oldest_message_age_seconds", (("queue", queue),))]
    # Then it has waited about 10 s, not an hour
    assert 10 <= age < 60


@pytest.mark.django_db
def test_a_deferred_task_not_yet_due_is_not_waiting(idle_queue):
    _, queue = idle_queue
    waiting_task(queue, 3600, due_seconds_ago=-600)
    age = samples(QueueCollector())[("conveyor_queue_oldest_message_age_seconds", (("queue", queue),))]
    assert age == 0


@pytest.mark.django_db
def test_an_empty_queue_has_age_zero(idle_queue):
    broker, queue = idle_queue
    broker.declare_queue(queue, ensure=True)
    age = samples(QueueCollector())[("conveyor_queue_oldest_message_age_seconds", (("queue", queue),))]
    assert age == 0


@pytest.mark.django_db
def test_reading_the_figures_leaves_the_messages_untouched_and_in_order(idle_queue):
    broker, queue = idle_queue
    # Given three messages in a known order
    sent = [broker.enqueue(message(queue)).message_id for _ in range(3)]
    # When the figures are read, twice
    samples(QueueCollector())
    samples(QueueCollector())
    # Then all three are still there, in the same order, none marked redelivered
    channel = broker.channel
    received = []
    for _ in range(3):
        method, _props, body = channel.basic_get(queue, auto_ack=True)
        assert method.redelivered is False
        received.append(dramatiq.Message.decode(body).message_id)
    assert received == sent
    assert channel.basic_get(queue, auto_ack=True)[0] is None


@pytest.mark.django_db
def test_scrapes_in_quick_succession_read_the_broker_once(idle_queue, settings, monkeypatch):
    broker, queue = idle_queue
    settings.CONVEYOR_QUEUE_METRICS_SECONDS = 60
    broker.declare_queue(queue, ensure=True)
    collector = QueueCollector()
    reads = []
    real = collector.read
    monkeypatch.setattr(collector, "read", lambda: reads.append(1) or real())
    # When Prometheus (or anyone) scrapes ten times in a row
    for _ in range(10):
        samples(collector)
    # Then RabbitMQ and the database were read once
    assert len(reads) == 1


def test_a_broker_that_cannot_be_reached_reports_collector_down(settings):
    # Given a broker URL where nothing listens
    settings.BROKER_URL = "amqp://guest:guest@127.0.0.1:1/%2F"
    # When the collector runs
    found = samples(QueueCollector())
    # Then it says so, instead of reporting empty queues
    assert found == {("conveyor_queue_collector_up", ()): 0}


@pytest.mark.django_db
def test_paused_gauge_is_one_for_a_paused_queue_and_zero_for_the_others(idle_queue, settings):
    from conveyor import queues

    _, queue = idle_queue
    # Given two configured queues, one of them paused by an operator
    other = f"{queue}_other"
    settings.CONVEYOR_QUEUES = [queue, other]
    queues.pause(queue, by="ops")
    # When the collector reads the figures
    found = samples(QueueCollector())
    # Then the paused queue reads 1 and the other (never paused, no state row) reads 0
    assert found[("conveyor_queue_paused", (("queue", queue),))] == 1
    assert found[("conveyor_queue_paused", (("queue", other),))] == 0


@pytest.mark.django_db
def test_paused_gauge_returns_to_zero_after_a_resume(idle_queue):
    from conveyor import queues

    _, queue = idle_queue
    # Given a queue that was paused and then resumed
    queues.pause(queue)
    queues.resume(queue)
    # When the collector reads the figures; Then it is not paused
    assert samples(QueueCollector())[("conveyor_queue_paused", (("queue", queue),))] == 0
