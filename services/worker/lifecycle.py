"""Records each run of a task in its TaskRecord: RUNNING, then SUCCESSFUL / READY (retry) / FAILED.

Must come before Dramatiq's Retries in the middleware list: "after" hooks run in
reverse order, so this one then sees the verdict Retries leaves on the message
(`message.failed` once retries are exhausted).

One UPDATE when a task starts and one when it ends: this is the worker's hot path.
"""

import logging
import os
import socket
import traceback
from datetime import UTC, datetime

from django.tasks import TaskResultStatus
from django.tasks.base import TaskResult
from django.tasks.signals import task_finished, task_started
from django.utils import timezone
from dramatiq.errors import ActorNotFound
from dramatiq.middleware import Middleware, SkipMessage

from conveyor import metrics
from conveyor.errors import UnknownTask

# django-dramatiq builds this middleware in its AppConfig's __init__, before Django's models
# are loaded: the modules that touch the models are imported in the hooks, when they run.

logger = logging.getLogger(__name__)

WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"


def _exception_path(exc):
    cls = type(exc)
    return f"{cls.__module__}.{cls.__qualname__}"


def _task_result(message, status, started, **extra):
    """A django.tasks TaskResult built from the message and what states.start() recorded."""
    from conveyor import catalog
    from conveyor.backend import ConveyorBackend

    try:
        task = catalog.get(message.actor_name).task
    except UnknownTask:
        return None, ConveyorBackend
    result = TaskResult(
        task=task,
        id=message.message_id,
        status=TaskResultStatus(status),
        enqueued_at=datetime.fromtimestamp(message.message_timestamp / 1000, UTC),
        started_at=started.started_at,
        finished_at=extra.get("finished_at"),
        last_attempted_at=started.last_attempted_at,
        args=list(message.args),
        kwargs=message.kwargs,
        backend=task.backend,
        errors=[],
        worker_ids=started.worker_ids,
    )
    if "return_value" in extra:
        object.__setattr__(result, "_return_value", extra["return_value"])
    return result, ConveyorBackend


class Lifecycle(Middleware):
    def __init__(self):
        # What the start UPDATE returned, per message being processed. Not kept in
        # message.options: Retries re-encodes those into the retry message.
        self._running = {}

    def before_process_message(self, broker, message):
        from conveyor import runtime, states
        from conveyor.core.models import TaskStatus

        # RabbitMQ sets `redelivered` on a message it hands out again (its consumer died);
        # the StubBroker has no such flag, so it counts as redelivered there.
        redelivered = getattr(message, "redelivered", True)
        started = states.start(message.message_id, WORKER_ID, redelivered=redelivered)
        if started is None:
            status = states.status(message.message_id)
            if status is None:
                # Published by something other than Conveyor: nothing to record it in.
                message.options["conveyor_dead_letter_reason"] = "no_record"
                message.fail()
                raise SkipMessage(f"no task record {message.message_id}")
            # Cancelled before it started, a duplicate of a finished task, or a
            # duplicate publish of a task another worker is running.
            raise SkipMessage(f"task {message.message_id} is {status}")
        self._running[message.message_id] = started
        result, sender = _task_result(message, TaskStatus.RUNNING, started)
        runtime.set_current(message.message_id, result)
        if result is not None:
            task_started.send(sender, task_result=result)

    def after_process_message(self, broker, message, *, result=None, exception=None):
        from conveyor import runtime, states
        from conveyor.core.models import TaskStatus

        runtime.clear_current()
        started = self._running.pop(message.message_id, None)
        if started is None:
            return  # skipped before it started
        if exception is None:
            finished_at = states.succeed(message.message_id, result)
            finished, status = True, TaskStatus.SUCCESSFUL
        else:
            error = {
                "exception_class_path": _exception_path(exception),
                "message": str(exception)[:1000],
                "traceback": "".join(traceback.format_exception(exception))[-20000:],
                "attempt": started.attempts,
                "at": timezone.now().isoformat(),
            }
            reason = ""
            if message.failed:
                reason = (
                    f"{_exception_path(exception)} after {message.options.get('retries', 0)} retries; "
                    f"dead-lettered to {message.queue_name}.XQ"
                )
            finished_at = states.fail_attempt(message.message_id, error, final=message.failed, reason=reason)
            finished, status = message.failed, TaskStatus.FAILED
        if finished:
            task_result, sender = _task_result(
                message,
                status,
                started,
                finished_at=finished_at,
                **({"return_value": result} if exception is None else {}),
            )
            if task_result is not None:
                task_finished.send(sender, task_result=task_result)

    def before_nack(self, broker, message):
        """A rejected message goes to <queue>.XQ: count it and say why in its row."""
        from conveyor import states

        exception = getattr(message, "_exception", None)
        reason = message.options.pop("conveyor_dead_letter_reason", None)
        if reason is None:
            reason = "unknown_task" if isinstance(exception, ActorNotFound) else "retries_exhausted"
        metrics.DEAD_LETTERS.labels(reason=reason).inc()
        if reason == "unknown_task":
            states.dead_letter(
                message.message_id,
                f"dead-lettered: unknown task {message.actor_name!r} (not in this worker's catalog)",
            )
        logger.warning("Dead-lettered message %s (%s): %s", message.message_id, message.actor_name, reason)
