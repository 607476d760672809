"""CONVEYOR_QUEUE_TYPE=quorum on the real RabbitMQ (one node holds quorum queues too).

The three-node behaviour (failover, lost majority) is tests/cluster/ (`make test-cluster`).
"""

import json
import secrets

import pika
import pytest
from django.test import override_settings
from dramatiq import Message

from conveyor import broker_urls, confirms
from services.worker.broker import RabbitmqBroker
from tests.support import rabbitmq

pytestmark = pytest.mark.integration


@pytest.fixture
def vhost():
    name = f"conveyor-quorum-{secrets.token_hex(4)}"
    rabbitmq.create_vhost(name)
    yield name
    rabbitmq.delete_vhost(name)


def url(vhost):
    return f"amqp://guest:guest@127.0.0.1:5672/{vhost}"


def queues(vhost):
    """name -> (type, arguments) as RabbitMQ lists them."""
    out = rabbitmq.rabbitmqctl("list_queues", "-p", vhost, "name", "type", "arguments", "--formatter", "json").stdout
    return {row["name"]: (row["type"], {a[0]: a[2] for a in row["arguments"]}) for row in json.loads(out)}


def test_quorum_declares_the_work_delay_and_dead_letter_queues_as_quorum_queues(vhost):
    # Given quorum queues; When Conveyor's broker declares the queue "jobs"
    with override_settings(CONVEYOR_QUEUE_TYPE="quorum", CONVEYOR_QUORUM_DELIVERY_LIMIT=9):
        broker = RabbitmqBroker(url=url(vhost), max_priority=None)
        try:
            broker.declare_queue("jobs", ensure=True)
        finally:
            broker.close()
    # Then all three are quorum queues; the work queue has its limit, no priority argument
    found = queues(vhost)
    assert {name: kind for name, (kind, _) in found.items()} == {
        "jobs": "quorum",
        "jobs.DQ": "quorum",
        "jobs.XQ": "quorum",
    }
    arguments = found["jobs"][1]
    assert arguments["x-delivery-limit"] == 9
    assert arguments["x-dead-letter-strategy"] == "at-least-once"
    assert arguments["x-dead-letter-routing-key"] == "jobs.XQ"
    assert "x-max-priority" not in arguments


def test_classic_stays_the_default_with_priorities(vhost):
    # Given the default settings; When the queue is declared
    broker = RabbitmqBroker(url=url(vhost), max_priority=10)
    try:
        broker.declare_queue("jobs", ensure=True)
    finally:
        broker.close()
    # Then it is a classic priority queue, as before
    kind, arguments = queues(vhost)["jobs"]
    assert kind == "classic"
    assert arguments["x-max-priority"] == 10


def test_a_message_published_with_confirms_to_a_quorum_queue_arrives(vhost):
    # Given a quorum queue and BROKER_URL whose first node does not answer
    dead = f"amqp://guest:guest@127.0.0.1:{rabbitmq.free_port()}/{vhost}"
    with override_settings(CONVEYOR_QUEUE_TYPE="quorum"):
        broker = RabbitmqBroker(url=f"{dead};{url(vhost)}", max_priority=None)
        message = Message(queue_name="jobs", actor_name="demo.tasks.add", args=(1, 2), kwargs={}, options={})
        try:
            # When a message is sent through the publisher (tries the nodes in order)
            confirmed = confirms.send(broker, [message])
        finally:
            confirms.close()
            broker.close()
    # Then RabbitMQ confirmed it and it waits in the queue
    assert confirmed == {message.message_id}
    connection = broker_urls.connect(url(vhost))
    try:
        method, _, body = connection.channel().basic_get("jobs", auto_ack=True)
    finally:
        connection.close()
    assert Message.decode(body).message_id == message.message_id
    assert isinstance(method, pika.spec.Basic.GetOk)
