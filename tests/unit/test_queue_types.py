"""How queues are declared for each CONVEYOR_QUEUE_TYPE, and BROKER_URL with several nodes."""

import pytest
from django.test import override_settings

from conveyor import broker_urls, queue_types


def test_classic_queues_get_no_extra_arguments():
    # Given the default queue type; Then Dramatiq's own arguments are left as they are
    with override_settings(CONVEYOR_QUEUE_TYPE="classic"):
        assert queue_types.work_queue_arguments() == {}
        assert queue_types.dead_letter_queue_arguments() == {}


def test_quorum_work_queues_have_a_delivery_limit_and_at_least_once_dead_lettering():
    # Given quorum queues with a delivery limit of 7
    with override_settings(CONVEYOR_QUEUE_TYPE="quorum", CONVEYOR_QUORUM_DELIVERY_LIMIT=7):
        arguments = queue_types.work_queue_arguments()
    # Then the work queue is a quorum queue whose poison messages go to the dead-letter queue
    assert arguments == {
        "x-queue-type": "quorum",
        "x-delivery-limit": 7,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def test_quorum_dead_letter_queues_are_quorum_queues_too():
    with override_settings(CONVEYOR_QUEUE_TYPE="quorum"):
        assert queue_types.dead_letter_queue_arguments() == {"x-queue-type": "quorum"}


def test_a_broker_url_with_several_nodes_gives_one_parameter_set_each_in_order():
    # Given a BROKER_URL naming three nodes (Dramatiq's ';' separator)
    url = "amqp://u:p@a:5672/v;amqp://u:p@b:5673/v; amqp://u:p@c:5674/v"
    # When it is read with a timeout
    nodes = broker_urls.parameters(url, timeout=2)
    # Then each node is tried in the order given, each failing fast
    assert [(n.host, n.port, n.virtual_host) for n in nodes] == [("a", 5672, "v"), ("b", 5673, "v"), ("c", 5674, "v")]
    assert {n.connection_attempts for n in nodes} == {1}
    assert {n.socket_timeout for n in nodes} == {2}


@pytest.mark.parametrize("value", ["mirrored", "Quorum"])
def test_an_unknown_queue_type_stops_the_settings(monkeypatch, value):
    import importlib

    from django.core.exceptions import ImproperlyConfigured

    import config.settings

    monkeypatch.setenv("CONVEYOR_QUEUE_TYPE", value)
    with pytest.raises(ImproperlyConfigured, match="CONVEYOR_QUEUE_TYPE"):
        importlib.reload(config.settings)
    monkeypatch.delenv("CONVEYOR_QUEUE_TYPE")
    importlib.reload(config.settings)
