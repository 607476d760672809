"""Dramatiq middleware: the worker process's two heartbeats.

- Its lease in the database (conveyor.workers), renewed every
  CONVEYOR_WORKER_HEARTBEAT_SECONDS until the process has stopped: the tasks it runs stay
  its own, and another worker takes one over only after the lease ran out.
- The heartbeat file the container healthcheck reads (`python -m conveyor.heartbeat
  worker`), touched while every consumer and worker thread is alive and the process
  takes work. If one dies, or a task is stuck past its hard time limit
  (services/worker/watchdog.py), the beats stop and the container turns unhealthy. A broker
  or database outage does not stop them: the consumers and the recorder reconnect on
  their own, and restarting the container would not bring the servers back.
"""

import logging
import threading
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from dramatiq.middleware import Middleware

from conveyor import heartbeat
from services.worker.watchdog import HardTimeLimit

logger = logging.getLogger(__name__)

FILE_INTERVAL_SECONDS = 5.0


def healthy(broker: Any, worker: Any) -> bool:
    """Every consumer and worker thread alive, and no task stuck past its hard time limit."""
    threads = [*worker.consumers.values(), *worker.workers]
    stuck = [m for m in broker.middleware if isinstance(m, HardTimeLimit) and m.stuck()]
    return bool(threads) and all(thread.is_alive() for thread in threads) and not stuck


class Heartbeat(Middleware):
    def __init__(self) -> None:
        self._taking_work = threading.Event()
        self._stopped = threading.Event()

    def after_worker_boot(self, broker: Any, worker: Any) -> None:
        self._taking_work.set()
        self._stopped.clear()
        threading.Thread(target=self._run, args=(broker, worker), name="conveyor-heartbeat", daemon=True).start()

    def before_worker_shutdown(self, broker: Any, worker: Any) -> None:
        self._taking_work.clear()
        heartbeat.forget("worker")

    def after_worker_shutdown(self, broker: Any, worker: Any) -> None:
        self._stopped.set()

    def _run(self, broker: Any, worker: Any) -> None:
        try:
            self._beat(broker, worker)
        finally:
            connection.close()  # this thread's own connection

    def _beat(self, broker: Any, worker: Any) -> None:
        interval = min(settings.CONVEYOR_WORKER_HEARTBEAT_SECONDS, FILE_INTERVAL_SECONDS)
        while not self._stopped.is_set():
            if self._taking_work.is_set() and healthy(broker, worker):
                heartbeat.beat("worker")
            try:
                broker.recorder.renew()
            except DatabaseError as exc:
                logger.warning("Could not renew this worker's lease: %s", exc)
                connection.close()
            self._stopped.wait(interval)
