"""Queue depth and the oldest message's age, read from the real RabbitMQ (test vhost)."""

import secrets
import time

import dramatiq
import pika
import pytest
from dramatiq.brokers.rabbitmq import RabbitmqBroker

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


def test_oldest_age_is_the_head_message_age(idle_queue):
    broker, queue = idle_queue
    # Given a message enqueued two minutes ago at the head, and a fresh one behind it
    broker.enqueue(message(queue, age_seconds=120))
    broker.enqueue(message(queue))
    # When the collector reads the broker
    age = samples(QueueCollector())[("conveyor_queue_oldest_message_age_seconds", (("queue", queue),))]
    # Then the age is that of the head message
    assert 120 <= age < 180


def test_a_retried_message_ages_from_the_end_of_its_backoff(idle_queue):
    broker, queue = idle_queue
    # Given a message accepted an hour ago whose retry backoff ended 10 s ago
    broker.enqueue(message(queue, age_seconds=3600, eta=int((time.time() - 10) * 1000)))
    age = samples(QueueCollector())[("conveyor_queue_oldest_message_age_seconds", (("queue", queue),))]
    # Then it has waited about 10 s, not an hour
    assert 10 <= age < 60


def test_an_empty_queue_has_age_zero(idle_queue):
    broker, queue = idle_queue
    broker.declare_queue(queue, ensure=True)
    age = samples(QueueCollector())[("conveyor_queue_oldest_message_age_seconds", (("queue", queue),))]
    assert age == 0


def test_peeking_leaves_the_messages_in_place_and_in_order(idle_queue):
    broker, queue = idle_queue
    # Given three messages in a known order
    sent = [broker.enqueue(message(queue)).message_id for _ in range(3)]
    # When the collector peeks at the head, twice
    samples(QueueCollector())
    samples(QueueCollector())
    # Then all three are still there, in the same order
    channel = broker.channel
    received = []
    for _ in range(3):
        method, _props, body = channel.basic_get(queue, auto_ack=True)
        received.append(dramatiq.Message.decode(body).message_id)
    assert received == sent
    assert channel.basic_get(queue, auto_ack=True)[0] is None


def test_a_broker_that_cannot_be_reached_reports_collector_down(settings):
    # Given a broker URL where nothing listens
    settings.BROKER_URL = "amqp://guest:guest@127.0.0.1:1/%2F"
    # When the collector runs
    found = samples(QueueCollector())
    # Then it says so, instead of reporting empty queues
    assert found == {("conveyor_queue_collector_up", ()): 0}
