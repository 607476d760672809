"""Dramatiq middleware: the worker process's two heartbeats.

- Its lease in the database (conveyor.workers), renewed every
  CONVEYOR_WORKER_HEARTBEAT_SECONDS (at most every 5 s) until the process has stopped: the
  tasks it runs stay its own, and another worker takes one over only after the lease ran
  out. The same beat reports what the process runs now and the runs it ended
  (conveyor.throughput), and reads back what operators asked: the paused queues
  (conveyor.queues) and whether this process is to be quiet: per beat, the lease's
  UPDATE, two small reads (the quiet flag, the paused queues), and a throughput UPDATE
  only when runs ended. The consumers act on the answer in their own threads
  (services/worker/consumers.py), so a pause, a resume or a quiet takes effect within one
  beat and about a second. While the database is unreachable the last answer stands: a
  paused queue stays paused.
- The heartbeat file the container healthcheck reads (`python -m conveyor.heartbeat
  worker`), touched while every consumer and worker thread is alive and the process
  takes work. If one dies, or a task is stuck past its hard time limit
  (services/worker/watchdog.py), the beats stop and the container turns unhealthy. A broker
  or database outage does not stop them: the consumers and the recorder reconnect on
  their own, and restarting the container would not bring the servers back.
"""

import logging
import threading
import time
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone
from dramatiq.middleware import Middleware

from conveyor import heartbeat
from services.worker.watchdog import HardTimeLimit

logger = logging.getLogger(__name__)

FILE_INTERVAL_SECONDS = 5.0
# Every worker drops throughput buckets older than conveyor.throughput.KEEP this often:
# no separate cleanup job, and the DELETE is cheap (an index on the bucket's start).
FORGET_EVERY_SECONDS = 60.0


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
        forgot_at = float("-inf")
        while not self._stopped.is_set():
            # A quiet worker, or one whose queues are all paused, still beats: it is idle on
            # purpose, and restarting it would not make it take work.
            if self._taking_work.is_set() and healthy(broker, worker):
                heartbeat.beat("worker")
            try:
                report(broker.recorder)
                if time.monotonic() - forgot_at >= FORGET_EVERY_SECONDS:
                    from conveyor import throughput

                    throughput.forget_before(timezone.now() - throughput.KEEP)
                    forgot_at = time.monotonic()
            except DatabaseError as exc:
                logger.warning("Could not renew this worker's lease: %s", exc)
                connection.close()
            self._stopped.wait(interval)


def report(recorder: Any) -> None:
    """One beat's exchange with the database: lease, running list, throughput; paused queues back."""
    # Late: django-dramatiq builds this middleware before Django's models are loaded.
    from conveyor import queues

    if recorder.me is None:
        return  # not started yet
    recorder.renew()  # also sets recorder.holds.quiet
    recorder.holds.paused = frozenset(queues.paused())
    recorder.write_counts()  # on failure they are counted at the next beat instead
