"""Outbox backlog and the age of its oldest due entry, read from the database at scrape time.

A backlog that grows while its oldest entry ages means tasks are accepted (202) but not
reaching RabbitMQ: the broker is down or refusing, or no relay is running.
"""

import logging
from collections.abc import Iterator

from django.db import close_old_connections
from prometheus_client.core import GaugeMetricFamily, Metric

from conveyor import outbox

logger = logging.getLogger(__name__)


class OutboxCollector:
    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily(
            "conveyor_outbox_collector_up", "1 if the last read of the outbox from the database succeeded, else 0."
        )
        try:
            backlog = outbox.backlog()
        except Exception as exc:
            logger.warning("Could not read the outbox backlog: %s", exc)
            close_old_connections()
            up.add_metric([], 0)
            yield up
            return
        yield GaugeMetricFamily(
            "conveyor_outbox_entries",
            "Tasks committed but not yet confirmed by RabbitMQ (deferred tasks waiting for run_after included).",
            value=backlog.entries,
        )
        yield GaugeMetricFamily(
            "conveyor_outbox_oldest_entry_age_seconds",
            "Seconds the oldest due outbox entry has waited to be published; 0 when none is due.",
            value=backlog.oldest_due_age_seconds,
        )
        up.add_metric([], 1)
        yield up
