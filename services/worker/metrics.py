"""Dramatiq middleware exporting Conveyor's task metrics (conveyor/metrics.py): the one metrics path per run.

List it before Lifecycle: "after" hooks run in reverse order, so this one sees the
outcome Lifecycle handed to the recorder and counts a retried attempt as a retry, a
final failure as a failure.

The metrics are written to PROMETHEUS_MULTIPROC_DIR and served by the container's
exposition process (services/worker/exposition.py, dramatiq_prom_host:dramatiq_prom_port).
"""

import logging
import time
from typing import Any, NamedTuple

from dramatiq.middleware import Middleware

from conveyor import metrics
from conveyor.status import TaskStatus

logger = logging.getLogger(__name__)

UNKNOWN_TASK = "<unknown>"


def _waiting_since(message):
    """When the message became runnable: its enqueue time, or the end of its retry backoff."""
    enqueued = message.message_timestamp / 1000
    eta = message.options.get("eta")
    return max(enqueued, eta / 1000) if eta else enqueued


def _task_label(broker, message):
    # Anyone who can publish could otherwise create one series per made-up actor name.
    return message.actor_name if message.actor_name in broker.actors else UNKNOWN_TASK


class _Series(NamedTuple):
    """The labelled series of one (task, queue)."""

    in_progress: Any
    duration: Any
    queue_wait: Any
    successful: Any
    failed: Any
    retries: Any


class TaskMetrics(Middleware):
    def __init__(self):
        # (task, queue) -> _Series. labels() costs a lock and a tuple per call; six calls
        # per task were visible in the worker's profile.
        self._series = {}

    def _series_for(self, task, queue):
        series = self._series.get((task, queue))
        if series is None:
            labels = {"task": task, "queue": queue}
            series = self._series[(task, queue)] = _Series(
                metrics.TASKS_IN_PROGRESS.labels(**labels),
                metrics.TASK_DURATION.labels(**labels),
                metrics.TASK_QUEUE_WAIT.labels(**labels),
                metrics.TASKS_FINISHED.labels(status=TaskStatus.SUCCESSFUL.value, **labels),
                metrics.TASKS_FINISHED.labels(status=TaskStatus.FAILED.value, **labels),
                metrics.TASK_RETRIES.labels(**labels),
            )
        return series

    def after_worker_boot(self, broker, worker):
        metrics.WORKER_PROCESSES.set(1)
        metrics.WORKER_THREADS.set(worker.worker_threads)
        # Create every series at zero so that the first failure or dead letter is a
        # visible increase (rate() and increase() cannot see a series' first sample).
        for reason in metrics.DEAD_LETTER_REASONS:
            metrics.DEAD_LETTERS.labels(reason=reason)
        try:
            # Late: django-dramatiq builds this middleware before Django's models are loaded.
            from conveyor import catalog

            for entry in catalog.entries():
                labels = {"task": entry.path, "queue": entry.task.queue_name}
                for status in metrics.TASK_STATUSES:
                    metrics.TASKS_FINISHED.labels(status=status, **labels)
                metrics.TASK_RETRIES.labels(**labels)
        except Exception:  # metrics must never stop a worker from booting
            logger.exception("Could not pre-create task metric series")

    def after_worker_shutdown(self, broker, worker):
        metrics.WORKER_PROCESSES.set(0)
        metrics.WORKER_THREADS.set(0)

    def before_process_message(self, broker, message):
        # Kept on the message itself: two copies of one task in a process never share an entry.
        message._conveyor_clock = (time.time(), time.monotonic())
        self._series_for(_task_label(broker, message), message.queue_name).in_progress.inc()

    def after_process_message(self, broker, message, *, result=None, exception=None):
        clock = getattr(message, "_conveyor_clock", None)
        if clock is None:
            return
        message._conveyor_clock = None
        wall_start, mono_start = clock
        series = self._series_for(_task_label(broker, message), message.queue_name)
        series.in_progress.dec()
        series.duration.observe(time.monotonic() - mono_start)
        series.queue_wait.observe(max(0.0, wall_start - _waiting_since(message)))
        # Lifecycle's outcome (its after-hook ran before this one): how the run ended.
        outcome = getattr(message, "_conveyor_outcome", None)
        status = outcome.status if outcome is not None else None
        if status == TaskStatus.SUCCESSFUL:
            series.successful.inc()
        elif status == TaskStatus.READY:
            series.retries.inc()
        else:
            series.failed.inc()

    def after_skip_message(self, broker, message):
        # It did not run.
        if getattr(message, "_conveyor_clock", None) is not None:
            message._conveyor_clock = None
            self._series_for(_task_label(broker, message), message.queue_name).in_progress.dec()
