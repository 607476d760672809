"""Records each run of a task: the consumer started it (RUNNING), this middleware hands its end to the recorder.

Its after-hook must run after Retries' (list Lifecycle before services.worker.retries.Retries:
"after" hooks run in reverse order), so it sees Retries' verdict: `message.failed` once the
retries are used up, or the retry Retries would have published.

Per run, in the worker thread: the return value is encoded here, strictly (no NaN, no
NUL character; PostgreSQL's jsonb refuses both), so a result that cannot be stored
fails the task with a clear error instead of failing the write. The outcome goes to the
process's recorder, which commits it with others and only then settles the message.
"""

import json
import logging
import time
import traceback
import weakref
from datetime import UTC, datetime, timedelta
from typing import Any

from django.tasks import TaskResultStatus
from django.tasks import signals as django_signals
from django.tasks.base import TaskResult
from django.tasks.signals import task_finished, task_started
from django.utils import timezone
from django.utils.json import normalize_json
from dramatiq.middleware import Middleware

logger = logging.getLogger(__name__)

# django-dramatiq builds this middleware in its AppConfig's __init__, before Django's
# models are loaded: the modules that touch them are imported in the hooks.

ERROR_TEXT = 20000


def _exception_path(exc: BaseException) -> str:
    cls = type(exc)
    return f"{cls.__module__}.{cls.__qualname__}"


def _text(value: str, limit: int) -> str:
    # PostgreSQL's jsonb cannot hold a NUL character.
    return value.replace("\x00", "\\0")[-limit:] if len(value) > limit else value.replace("\x00", "\\0")


def _error(exception: BaseException, attempt: int) -> dict:
    return {
        "exception_class_path": _exception_path(exception),
        "message": _text(str(exception), 1000),
        "traceback": _text("".join(traceback.format_exception(exception)), ERROR_TEXT),
        "attempt": attempt,
        "at": timezone.now().isoformat(),
    }


def encode_result(value: Any) -> str:
    """The return value as JSON PostgreSQL stores; ValueError/TypeError if it cannot be."""
    encoded = json.dumps(normalize_json(value), allow_nan=False)
    if "\\u0000" in encoded:
        raise ValueError("it contains a NUL character (\\u0000), which PostgreSQL's jsonb cannot store")
    return encoded


def _task_result(message: Any, status: str, **extra: Any) -> TaskResult | None:
    """A django.tasks TaskResult from the message and its run (for Django's signals and task contexts)."""
    from conveyor import catalog
    from conveyor.errors import UnknownTask

    started = message._conveyor_started
    try:
        task = catalog.get(message.actor_name).task
    except UnknownTask:
        return None
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
    return result


def _send_finished(message: Any, status: str, return_value: Any) -> Any:
    from conveyor.backend import ConveyorBackend

    def send(outcome: Any) -> None:
        extra = {"finished_at": outcome.finished_at}
        if return_value is not _NOTHING:
            extra["return_value"] = return_value
        result = _task_result(message, status, **extra)
        if result is not None:
            task_finished.send(ConveyorBackend, task_result=result)

    return send


_NOTHING = object()
_DJANGO_LOG = logging.getLogger("django.tasks")


def _wanted(signal: Any, django_receiver: Any, level: int) -> bool:
    """Whether sending `signal` does anything: a receiver besides Django's own logging one,
    or Django's logging one with its level enabled. Building the TaskResult for a signal
    nobody hears was a visible part of a worker's CPU per task."""
    for entry in signal.receivers:
        receiver = entry[1]() if isinstance(entry[1], weakref.ReferenceType) else entry[1]
        if receiver is not None and receiver is not django_receiver:
            return True
    return _DJANGO_LOG.isEnabledFor(level)


class Lifecycle(Middleware):
    def before_worker_boot(self, broker: Any, worker: Any) -> None:
        queues = sorted(worker.consumer_whitelist or broker.get_declared_queues())
        broker.recorder.start(worker.worker_threads, queues)

    def before_consumer_thread_shutdown(self, broker: Any, thread: Any) -> None:
        # Worker threads have stopped by now: write and settle every outcome while the
        # consumers' connections are still open.
        broker.recorder.flush(timeout=30.0)

    def after_worker_shutdown(self, broker: Any, worker: Any) -> None:
        broker.recorder.stop()

    def before_process_message(self, broker: Any, message: Any) -> None:
        from conveyor import runtime
        from conveyor.backend import ConveyorBackend
        from conveyor.status import TaskStatus

        if getattr(message, "_conveyor_started", None) is None:
            return  # not a task run (a delayed message being moved)
        message._conveyor_began = time.monotonic()
        runtime.set_current(message.message_id, lambda: _task_result(message, TaskStatus.RUNNING))
        if _wanted(task_started, django_signals.log_task_started, logging.INFO):
            result = runtime.current_task_result()
            if result is not None:
                task_started.send(ConveyorBackend, task_result=result)

    def after_process_message(self, broker: Any, message: Any, *, result: Any = None, exception: Any = None) -> None:
        from conveyor import runtime, states
        from conveyor.status import TaskStatus

        started = getattr(message, "_conveyor_started", None)
        if started is None:
            return
        runtime.clear_current()
        outcome = states.Outcome(task_id=message.message_id, status=TaskStatus.SUCCESSFUL)
        outcome.retries = message.options.get("retries", 0)
        dead_letter, return_value = None, _NOTHING
        if exception is None:
            try:
                outcome.return_json = encode_result(result)
                return_value = json.loads(outcome.return_json)
            except (TypeError, ValueError) as exc:
                # Running it again would return the same: FAILED now, saying why.
                outcome.status = TaskStatus.FAILED
                outcome.error = _error(exc, started.attempts)
                outcome.error["exception_class_path"] = "conveyor.errors.UnstorableResult"
                outcome.error["message"] = _text(f"the return value cannot be stored as JSON: {exc}", 1000)
                outcome.reason = "its return value cannot be stored as JSON; dead-lettered"
                dead_letter = "unstorable_result"
                message.fail()
        else:
            outcome.error = _error(exception, started.attempts)
            retry = getattr(message, "_conveyor_retry", None)
            if retry is not None and not message.failed:
                outcome.status = TaskStatus.READY
                outcome.retries, delay_ms = retry
                outcome.run_after = timezone.now() + timedelta(milliseconds=max(delay_ms, 1))
            else:
                outcome.status = TaskStatus.FAILED
                throws = broker.get_actor(message.actor_name).options.get("throws") or ()
                why = "not retryable" if isinstance(exception, throws) else f"after {started.attempts} attempt(s)"
                outcome.reason = f"{_exception_path(exception)} {why}; dead-lettered to {message.queue_name}.XQ"[
                    : states.REASON_LENGTH
                ]
                dead_letter = "retries_exhausted"
                message.fail()
        on_written = None
        if outcome.status in (TaskStatus.SUCCESSFUL, TaskStatus.FAILED):
            level = logging.INFO if outcome.status == TaskStatus.SUCCESSFUL else logging.ERROR
            if _wanted(task_finished, django_signals.log_task_finished, level):
                on_written = _send_finished(message, outcome.status, return_value)
        broker.recorder.finish(outcome, message, dead_letter=dead_letter, on_written=on_written)
        broker.recorder.slots.give(seconds=time.monotonic() - message._conveyor_began)

    def after_skip_message(self, broker: Any, message: Any) -> None:
        from conveyor import runtime, states
        from conveyor.status import TaskStatus

        started = getattr(message, "_conveyor_started", None)
        if started is None:
            return
        # Another middleware refused to run a task this worker had started: record why.
        runtime.clear_current()
        outcome = states.Outcome(task_id=message.message_id, status=TaskStatus.FAILED, reason="skipped by the worker")
        message.fail()
        broker.recorder.finish(outcome, message, dead_letter="skipped")
        broker.recorder.slots.give()
