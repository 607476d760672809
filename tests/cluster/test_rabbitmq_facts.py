"""The RabbitMQ (3.10) behaviour Conveyor's quorum-queue design relies on, on the shared private cluster.

If a RabbitMQ upgrade changes one of these, conveyor/queue_types.py and SCALING.md must change too.
"""

import time

import pika
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

QUORUM_DLX = {
    "x-queue-type": "quorum",
    "x-delivery-limit": 3,
    "x-dead-letter-exchange": "",
    "x-dead-letter-routing-key": "work.XQ",
    "x-dead-letter-strategy": "at-least-once",
    "x-overflow": "reject-publish",  # at-least-once needs it (drop-head falls back to at-most-once)
}


def declare_work_queue(url):
    connection, ch = channel(url)
    ch.queue_declare("work.XQ", durable=True, arguments={"x-queue-type": "quorum"})
    ch.queue_declare("work", durable=True, arguments=QUORUM_DLX)
    connection.close()


def channel(url):
    connection = pika.BlockingConnection(pika.URLParameters(url))
    return connection, connection.channel()


def test_three_nodes_form_one_cluster(whole_cluster):
    cluster = whole_cluster
    assert all(sorted(cluster.running_nodes(i)) == sorted(cluster.names) for i in range(3))
    assert cluster.broker_url.count(";") == 2


def test_quorum_queues_refuse_priorities(whole_cluster, cluster_vhost):
    connection, ch = channel(whole_cluster.url(0, cluster_vhost))
    with pytest.raises(pika.exceptions.ChannelClosedByBroker, match="invalid arg 'x-max-priority'"):
        ch.queue_declare("prio", durable=True, arguments={"x-queue-type": "quorum", "x-max-priority": 10})
    connection.close()


def test_a_killed_leader_is_replaced_and_confirms_keep_coming(whole_cluster, cluster_vhost):
    cluster, vhost = whole_cluster, cluster_vhost
    declare_work_queue(cluster.url(0, vhost))
    leader = cluster.wait_leader("work", vhost)
    survivor = (leader + 1) % 3
    connection, ch = channel(cluster.url(survivor, vhost))
    ch.confirm_delivery()
    cluster.kill_node(leader)
    began = time.monotonic()
    # A channel's first publish to the queue while the election runs is nacked at once, and
    # on 3.10.8 that channel is nacked for good: retry on a new channel. (A channel that
    # published to the queue before the kill only waits ~0.2-0.5 s for its confirms.)
    while True:
        try:
            ch.basic_publish("", "work", b"after-kill", pika.BasicProperties(delivery_mode=2))
            break
        except pika.exceptions.NackError:
            assert time.monotonic() - began < 5
            time.sleep(0.1)
            ch = connection.channel()
            ch.confirm_delivery()
    assert cluster.wait_leader("work", vhost, other_than=leader, node=survivor) != leader
    assert ch.basic_get("work", auto_ack=True)[2] == b"after-kill"
    connection.close()
    cluster.restart_node(leader)
    row = cluster.wait_members_online("work", vhost)
    assert sorted(row["online"]) == sorted(cluster.names)


def test_a_message_requeued_past_the_delivery_limit_is_dead_lettered(whole_cluster, cluster_vhost):
    declare_work_queue(whole_cluster.url(0, cluster_vhost))
    connection, ch = channel(whole_cluster.url(1, cluster_vhost))
    ch.confirm_delivery()
    ch.basic_publish("", "work", b"poison", pika.BasicProperties(delivery_mode=2))
    deliveries = 0
    while (method := ch.basic_get("work")[0]) is not None:
        deliveries += 1
        ch.basic_nack(method.delivery_tag, requeue=True)
    assert deliveries == 4  # the first delivery and three redeliveries
    deadline = time.monotonic() + 10
    while (got := ch.basic_get("work.XQ", auto_ack=True))[0] is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert got[2] == b"poison"
    assert got[1].headers["x-first-death-reason"] == "delivery_limit"
    connection.close()
