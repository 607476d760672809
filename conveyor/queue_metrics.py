"""Depth of every Conveyor queue and the age of its oldest waiting message, read at scrape time.

Neither Dramatiq nor RabbitMQ's own exporters give the age of a queue's oldest message,
so this collector asks the broker itself, over AMQP, on every scrape:

* depth: a passive `queue.declare` of `<queue>`, `<queue>.DQ` (delayed: retry backoffs
  and `eta`s) and `<queue>.XQ` (dead letters) returns each queue's *ready* count and
  its consumer count, without creating or changing anything;
* age: `basic.get` without ack of `<queue>`'s head message, read its Dramatiq
  timestamp (enqueue time, or the end of its retry backoff), then `basic.nack` with
  requeue. RabbitMQ puts a requeued message back in its original position in a
  classic queue (the kind Dramatiq declares), so the peek changes nothing but the
  message's `redelivered` flag.

AMQP cannot count *unacknowledged* messages (delivered to a worker, not yet acked:
running, prefetched, or held in worker memory until a retry is due). When
RABBITMQ_MANAGEMENT_URL names the management API, the counts come from it instead,
including `unacked`; the age still comes from the peek.

Caveats an operator should know: queues are declared with priorities, so the head is
the most urgent message, not always the oldest; and on quorum queues a requeue counts
as a delivery against the delivery limit, so there set CONVEYOR_QUEUE_PEEK=false.
"""

import base64
import json
import logging
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import pika
from django.conf import settings
from pika.adapters.blocking_connection import BlockingChannel
from prometheus_client.core import GaugeMetricFamily, Metric

logger = logging.getLogger(__name__)

TIMEOUT = 3.0  # seconds; a scrape must not hang on a sick broker
STATES = (("", "ready"), (".DQ", "delayed"), (".XQ", "dead_letter"))


class QueueFigures(NamedTuple):
    depth: dict[tuple[str, str], int]  # (queue, state) -> messages
    consumers: dict[str, int]  # queue -> consumers
    ages: dict[str, float]  # queue -> seconds the head message has waited


class PassiveDeclare(NamedTuple):
    ready: int
    consumers: int


class QueueCollector:
    def describe(self) -> list[Metric]:
        return []  # read at scrape time; names are documented in docs/observability.md

    def collect(self) -> Iterator[GaugeMetricFamily]:
        started = time.monotonic()
        up = GaugeMetricFamily(
            "conveyor_queue_collector_up", "1 if the last read of queue depths from RabbitMQ succeeded, else 0."
        )
        try:
            figures = self.read()
        except Exception as exc:
            logger.warning("Could not read queue depths from RabbitMQ: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        messages = GaugeMetricFamily(
            "conveyor_queue_messages",
            "Messages in a queue by state: ready (waiting), unacked (delivered, not acked; needs the "
            "management API), delayed (<queue>.DQ) and dead_letter (<queue>.XQ).",
            labels=["queue", "state"],
        )
        for (queue, state), value in sorted(figures.depth.items()):
            messages.add_metric([queue, state], value)
        consumer_family = GaugeMetricFamily(
            "conveyor_queue_consumers", "Consumers (worker processes) subscribed to a queue.", labels=["queue"]
        )
        for queue, value in sorted(figures.consumers.items()):
            consumer_family.add_metric([queue], value)
        age_family = GaugeMetricFamily(
            "conveyor_queue_oldest_message_age_seconds",
            "Seconds the message at the head of a queue has been waiting; 0 when none is waiting.",
            labels=["queue"],
        )
        for queue, value in sorted(figures.ages.items()):
            age_family.add_metric([queue], value)
        up.add_metric([], 1)
        yield from (messages, consumer_family, age_family, up)
        yield GaugeMetricFamily(
            "conveyor_queue_collector_duration_seconds",
            "Time the last read of queue depths took.",
            value=time.monotonic() - started,
        )

    def read(self) -> QueueFigures:
        """Every Conveyor queue's depth by state, consumers, and the age of its head message."""
        queues = list(settings.CONVEYOR_QUEUES)
        management = getattr(settings, "RABBITMQ_MANAGEMENT_URL", "")
        connection = _connect()
        try:
            if management:
                depth, consumers = _management_depths(management, connection.params_vhost, queues)
            else:
                depth, consumers = _amqp_depths(connection, queues)
            ages = {}
            if getattr(settings, "CONVEYOR_QUEUE_PEEK", True):
                for queue in queues:
                    if (queue, "ready") in depth:
                        ages[queue] = _head_age(connection, queue) if depth[(queue, "ready")] else 0.0
        finally:
            connection.close()
        return QueueFigures(depth, consumers, ages)


class _Connection:
    """A pika connection that reopens its channel after a 404 closes it."""

    def __init__(self, url: str) -> None:
        params = pika.URLParameters(url)
        params.socket_timeout = TIMEOUT
        params.blocked_connection_timeout = TIMEOUT
        params.stack_timeout = TIMEOUT
        params.connection_attempts = 1
        self.params_vhost = params.virtual_host
        self._connection = pika.BlockingConnection(params)
        self._channel = None

    @property
    def channel(self) -> BlockingChannel:
        if self._channel is None or self._channel.is_closed:
            self._channel = self._connection.channel()
        return self._channel

    def declare_passive(self, name: str) -> PassiveDeclare | None:
        """The queue's ready count and consumers, or None if it does not exist (no worker declared it yet)."""
        try:
            result = self.channel.queue_declare(name, passive=True).method
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code == 404:
                return None
            raise
        return PassiveDeclare(result.message_count, result.consumer_count)

    def close(self) -> None:
        try:
            self._connection.close()
        except Exception:
            pass


def _connect() -> _Connection:
    return _Connection(settings.BROKER_URL)


def _amqp_depths(connection: _Connection, queues: Sequence[str]) -> tuple[dict[tuple[str, str], int], dict[str, int]]:
    depth, consumers = {}, {}
    for queue in queues:
        for suffix, state in STATES:
            found = connection.declare_passive(queue + suffix)
            if found is None:
                continue
            depth[(queue, state)] = found.ready
            if state == "ready":
                consumers[queue] = found.consumers
    return depth, consumers


def _management_depths(
    base_url: str, vhost: str, queues: Sequence[str]
) -> tuple[dict[tuple[str, str], int], dict[str, int]]:
    parts = urllib.parse.urlsplit(base_url)
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
    url = urllib.parse.urlunsplit(
        (parts.scheme, netloc, f"{parts.path.rstrip('/')}/api/queues/{urllib.parse.quote(vhost, safe='')}", "", "")
    )
    url += "?columns=name,messages_ready,messages_unacknowledged,consumers"
    request = urllib.request.Request(url)
    if parts.username:
        credentials = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        request.add_header("Authorization", "Basic " + base64.b64encode(credentials.encode()).decode())
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        listed = {row["name"]: row for row in json.load(response)}
    depth, consumers = {}, {}
    for queue in queues:
        main = listed.get(queue)
        if main is None:
            continue
        depth[(queue, "ready")] = main.get("messages_ready", 0)
        depth[(queue, "unacked")] = main.get("messages_unacknowledged", 0)
        consumers[queue] = main.get("consumers", 0)
        for suffix, state in STATES[1:]:
            row = listed.get(queue + suffix)
            if row is not None:
                # Dramatiq holds delayed messages unacked in worker memory until due.
                depth[(queue, state)] = row.get("messages_ready", 0) + row.get("messages_unacknowledged", 0)
    return depth, consumers


def _head_age(connection: _Connection, queue: str) -> float:
    channel = connection.channel
    method, _properties, body = channel.basic_get(queue, auto_ack=False)
    if method is None:
        return 0.0  # taken by a consumer since the declare
    try:
        return max(0.0, time.time() - _waiting_since(body, _properties))
    finally:
        channel.basic_nack(method.delivery_tag, requeue=True)


def _waiting_since(body: bytes, properties: pika.spec.BasicProperties) -> float:
    """Seconds since the epoch at which the message became runnable."""
    try:
        message = json.loads(body)
        since = message["message_timestamp"] / 1000
        eta = (message.get("options") or {}).get("eta")
        return max(since, eta / 1000) if eta else since
    except (ValueError, KeyError, TypeError):
        # Not a Dramatiq message: fall back to the AMQP timestamp, if the publisher set one.
        return float(properties.timestamp) if properties.timestamp else time.time()
