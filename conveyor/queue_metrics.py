"""Depth of every Conveyor queue and how long its oldest task has waited, for Prometheus.

* depth and consumers: a passive `queue.declare` of `<queue>`, `<queue>.DQ` (delayed
  messages) and `<queue>.XQ` (dead letters) returns each queue's *ready* count and its
  consumers, without creating or changing anything. With RABBITMQ_MANAGEMENT_URL the
  counts come from the management API instead, `unacked` included (AMQP cannot count
  messages delivered to a worker and not yet acknowledged).
* age: from the task table, not from the broker. The oldest task that is READY and due
  (enqueued, or due after a deferral or a retry backoff) in the queue, however far it
  got: still in the outbox (the broker is down) or waiting in RabbitMQ. Reading a
  message's age from RabbitMQ means taking the message (basic.get, then a requeue),
  which marks it redelivered and, on quorum queues, counts as a delivery: metrics never
  touch a queue's messages.
* paused: from the database (conveyor.queues), 1 for a queue an operator paused, else 0,
  for every configured queue, so an alert on a deep queue can tell "stuck" from "paused".

The figures are read at most every CONVEYOR_QUEUE_METRICS_SECONDS per process and served
from memory in between, so scraping /metrics often, or by anyone, cannot load the broker
or the database.
"""

import base64
import json
import logging
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from typing import Any, NamedTuple

import pika
from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from conveyor import broker_urls
from conveyor import queues as queue_states
from conveyor.core.models import TaskRecord
from conveyor.status import OPEN, TaskStatus

logger = logging.getLogger(__name__)

TIMEOUT = 3.0  # seconds; a refresh must not hang on a sick broker
STATES = (("", "ready"), (".DQ", "delayed"), (".XQ", "dead_letter"))
# Of the oldest waiting tasks (by enqueue time), this many are looked at for the one that
# has waited longest (a retry waits from the end of its backoff, not from its enqueue).
AGE_CANDIDATES = 50


class QueueFigures(NamedTuple):
    depth: dict[tuple[str, str], int]  # (queue, state) -> messages
    consumers: dict[str, int]  # queue -> consumers
    ages: dict[str, float]  # queue -> seconds its oldest due READY task has waited
    paused: dict[str, int]  # queue -> 1 if an operator paused it, else 0
    seconds: float  # how long reading them took


class PassiveDeclare(NamedTuple):
    ready: int
    consumers: int


class QueueCollector:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._figures: QueueFigures | None = None
        self._error: str | None = None
        self._read_at = float("-inf")

    def describe(self) -> list:
        return []  # read at scrape time; names are documented in docs/observability.md

    def figures(self) -> QueueFigures | None:
        """The latest figures, read again when older than CONVEYOR_QUEUE_METRICS_SECONDS (None: unreadable)."""
        with self._lock:  # concurrent scrapes wait for one read instead of each doing their own
            if time.monotonic() - self._read_at >= settings.CONVEYOR_QUEUE_METRICS_SECONDS:
                try:
                    self._figures, self._error = self.read(), None
                except Exception as exc:
                    logger.warning("Could not read queue figures: %s", exc)
                    self._figures, self._error = None, str(exc)
                self._read_at = time.monotonic()
            return self._figures

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily(
            "conveyor_queue_collector_up", "1 if the last read of queue figures (RabbitMQ, database) succeeded, else 0."
        )
        figures = self.figures()
        if figures is None:
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
        consumer_family = _per_queue(
            "conveyor_queue_consumers", "Consumers (worker processes) subscribed to a queue.", figures.consumers
        )
        age_family = _per_queue(
            "conveyor_queue_oldest_message_age_seconds",
            "Seconds the oldest task that is READY and due in a queue has waited; 0 when none waits.",
            figures.ages,
        )
        paused_family = _per_queue(
            "conveyor_queue_paused",
            "1 if an operator paused the queue (workers start none of its tasks), else 0.",
            figures.paused,
        )
        up.add_metric([], 1)
        yield from (messages, consumer_family, age_family, paused_family, up)
        yield GaugeMetricFamily(
            "conveyor_queue_collector_duration_seconds",
            "Time the last read of queue figures took.",
            value=figures.seconds,
        )

    def read(self) -> QueueFigures:
        """Every Conveyor queue's depth by state, consumers, and the wait of its oldest due task."""
        started = time.monotonic()
        queues = list(settings.CONVEYOR_QUEUES)
        management = getattr(settings, "RABBITMQ_MANAGEMENT_URL", "")
        connection = _Connection(settings.BROKER_URL)
        try:
            if management:
                depth, consumers = _management_depths(management, connection.params_vhost, queues)
            else:
                depth, consumers = _amqp_depths(connection, queues)
        finally:
            connection.close()
        ages = oldest_waits(queues)
        paused = queue_states.paused()
        flags = {queue: int(queue in paused) for queue in queues}
        return QueueFigures(depth, consumers, ages, flags, time.monotonic() - started)


def _per_queue(name: str, documentation: str, values: dict[str, float]) -> GaugeMetricFamily:
    """A gauge with one sample per queue, in queue-name order."""
    family = GaugeMetricFamily(name, documentation, labels=["queue"])
    for queue, value in sorted(values.items()):
        family.add_metric([queue], value)
    return family


def oldest_waits(queues: list[str], now: datetime | None = None) -> dict[str, float]:
    """Seconds the oldest READY, due task of each queue has waited (0 when none does)."""
    now = now or timezone.now()
    ages = {}
    for queue in queues:
        waiting = (
            TaskRecord.objects.filter(status_group=OPEN, status=TaskStatus.READY, queue_name=queue)
            .filter(Q(run_after__isnull=True) | Q(run_after__lte=now))
            .order_by("enqueued_at")
            .values_list("enqueued_at", "run_after")[:AGE_CANDIDATES]
        )
        ages[queue] = max(
            ((now - max(enqueued, run_after or enqueued)).total_seconds() for enqueued, run_after in waiting),
            default=0.0,
        )
    return ages


class _Connection:
    """A pika connection that reopens its channel after a 404 closes it."""

    def __init__(self, url: str) -> None:
        # Any of BROKER_URL's nodes: a cluster answers for every queue from each node.
        nodes = broker_urls.parameters(url, timeout=TIMEOUT)
        self.params_vhost = nodes[0].virtual_host
        self._connection = pika.BlockingConnection(nodes)
        self._channel = None

    @property
    def channel(self) -> Any:
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
        except Exception:  # already broken: the socket is released either way
            pass


def _amqp_depths(connection: _Connection, queues: list[str]) -> tuple[dict, dict]:
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


def _management_depths(base_url: str, vhost: str, queues: list[str]) -> tuple[dict, dict]:
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
                depth[(queue, state)] = row.get("messages_ready", 0) + row.get("messages_unacknowledged", 0)
    return depth, consumers
