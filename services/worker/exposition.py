"""The worker container's /metrics: one small HTTP server for all its worker processes.

Dramatiq's Prometheus middleware served this before, and counted every message a second
time (its dramatiq_* series) beside Conveyor's own. Now only services/worker/metrics.py
counts; this serves what every process of the container wrote to PROMETHEUS_MULTIPROC_DIR
(set and emptied by services/worker/start.sh before Python starts), on
dramatiq_prom_host:dramatiq_prom_port, the variables Dramatiq's exporter used.

Dramatiq's CLI starts each middleware's `forks` as a process of its own beside the
worker processes, and stops it with them.
"""

import logging
import os
import signal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from dramatiq.middleware import Middleware

from services.worker.orphans import die_with_parent

logger = logging.getLogger(__name__)


def _address() -> tuple[str, int]:
    return os.environ.get("dramatiq_prom_host", "127.0.0.1"), int(os.environ.get("dramatiq_prom_port", "9191"))


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802  (the name http.server calls)
        # Late: prometheus_client picks its storage when first imported; the folder is set by now.
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        output = generate_latest(registry)
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE_LATEST)
        self.end_headers()
        self.wfile.write(output)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        logger.debug(format, *args)


def serve() -> int:
    """Serve the container's metrics until stopped (a Dramatiq fork process)."""
    die_with_parent(signal.SIGTERM)
    server = ThreadingHTTPServer(_address(), _Handler)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


class MetricsExposition(Middleware):
    @property
    def forks(self) -> list:
        return [serve] if os.environ.get("PROMETHEUS_MULTIPROC_DIR") else []

    def after_worker_shutdown(self, broker: Any, worker: Any) -> None:
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if directory:
            from prometheus_client import multiprocess

            # This process's "live" gauges (threads, tasks in progress) stop counting.
            multiprocess.mark_process_dead(os.getpid(), directory)
