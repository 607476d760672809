"""Batched publishing with publisher confirms, against the real RabbitMQ."""

import uuid

import dramatiq
import pika
import pytest
from django.conf import settings

from conveyor import confirms
from conveyor.errors import PublishError

pytestmark = [pytest.mark.integration]

QUEUE = "conveyor-test-batch"


def _channel_call(fn):
    connection = pika.BlockingConnection(pika.URLParameters(settings.BROKER_URL))
    try:
        return fn(connection.channel())
    finally:
        connection.close()


def queue_depth(queue):
    return _channel_call(lambda ch: ch.queue_declare(queue, passive=True).method.message_count)


def delete_queue(queue):
    _channel_call(lambda ch: ch.queue_delete(queue))


def messages(n, queue=QUEUE):
    return [
        dramatiq.Message(
            queue_name=queue,
            actor_name="demo.tasks.noop",
            args=(),
            kwargs={},
            options={"broker_priority": 5},
            message_id=str(uuid.uuid4()),
        )
        for _ in range(n)
    ]


@pytest.fixture
def broker():
    broker = dramatiq.get_broker()
    broker.declare_queue(QUEUE, ensure=True)
    _channel_call(lambda ch: ch.queue_purge(QUEUE))
    yield broker
    confirms.close()
    for name in (QUEUE, f"{QUEUE}.DQ", f"{QUEUE}.XQ"):
        delete_queue(name)
    broker.queues.discard(QUEUE)
    broker.queues_pending.discard(QUEUE)


def test_a_batch_is_confirmed_as_a_whole_and_lands_on_the_queue(broker):
    # Given 1,000 messages
    batch = messages(1000)
    # When they are published as one batch
    confirmed = confirms.send(broker, batch)
    # Then RabbitMQ confirmed every one, and every one is on the queue
    assert confirmed == {m.message_id for m in batch}
    assert queue_depth(QUEUE) == 1000


def test_the_connection_is_reused_across_batches(broker):
    # Given a first batch published
    confirms.send(broker, messages(3))
    first = confirms._local.channel
    # When a second batch follows soon after
    confirms.send(broker, messages(3))
    # Then it went over the same connection, and both batches landed
    assert confirms._local.channel is first
    assert queue_depth(QUEUE) == 6


def test_a_message_for_a_vanished_queue_is_not_counted_and_its_queue_is_declared_again(broker):
    # Given a queue deleted behind the broker's back (Dramatiq believes it is declared)
    confirms.send(broker, messages(1))
    delete_queue(QUEUE)
    lost = messages(2)
    # When messages for it are published
    confirmed = confirms.send(broker, lost)
    # Then RabbitMQ returned them as unroutable: not counted as published
    assert confirmed == set()
    # And the next try declares the queue again and lands
    retry = confirms.send(broker, lost)
    assert retry == {m.message_id for m in lost}
    assert queue_depth(QUEUE) == 2


def test_an_idle_connection_is_replaced_before_it_is_used(broker, monkeypatch):
    # Given a publisher whose connection sat idle longer than the server may keep it
    confirms.send(broker, messages(1))
    stale = confirms._local.channel
    monkeypatch.setattr(confirms, "MAX_IDLE_SECONDS", 0.0)
    # When the next batch is published
    confirmed = confirms.send(broker, messages(2))
    # Then it went over a new connection and landed, and the stale one was closed
    assert len(confirmed) == 2
    assert confirms._local.channel is not stale
    assert stale._connection.is_closed
    assert queue_depth(QUEUE) == 3


def test_an_unreachable_broker_raises_and_confirms_nothing(broker, monkeypatch):
    # Given a broker URL where nothing listens
    monkeypatch.setattr(broker, "parameters", pika.URLParameters("amqp://guest:guest@127.0.0.1:1/"))
    confirms.close()
    # When a batch is published
    # Then it raises, so the caller keeps every outbox entry
    with pytest.raises(PublishError):
        confirms.send(broker, messages(2))


def test_with_several_broker_urls_the_next_node_is_tried(broker, monkeypatch):
    # Given a BROKER_URL naming a dead node first, then the real one
    real = pika.URLParameters(settings.BROKER_URL)
    monkeypatch.setattr(broker, "parameters", [pika.URLParameters("amqp://guest:guest@127.0.0.1:1/"), real])
    confirms.close()
    # When a batch is published
    confirmed = confirms.send(broker, messages(2))
    # Then it went to the live node
    assert len(confirmed) == 2
    assert queue_depth(QUEUE) == 2
