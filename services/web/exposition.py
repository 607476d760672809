"""The /metrics view: every process's metrics, plus queue depth and outbox backlog.

Under gunicorn the metrics of all worker processes come from PROMETHEUS_MULTIPROC_DIR
(services/web/start.sh sets and empties it); without it (tests, runserver) from this
process. The broker and outbox collectors run at scrape time in whichever process
answers, so every web replica reports the same queue figures: dashboards and alerts
take `max` across replicas, never `sum`.
"""

import os

from django.http import HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from conveyor.outbox_metrics import OutboxCollector
from conveyor.queue_metrics import QueueCollector

PATH = "/metrics"
VIEW_LABEL = "metrics"

queue_collector = QueueCollector()  # shared with the dashboard (services/web/dashboard)
_outbox = OutboxCollector()


class _ThisProcess:
    """The default registry, re-exposed inside a per-scrape registry."""

    def collect(self):
        return REGISTRY.collect()


def metrics_view(request):
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcess())
    registry.register(queue_collector)
    registry.register(_outbox)
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
