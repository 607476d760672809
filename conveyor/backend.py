"""Conveyor as a django.tasks backend: `@task` functions, `.enqueue()`, `get_result()`.

    TASKS = {"default": {"BACKEND": "conveyor.backend.ConveyorBackend", "QUEUES": [...]}}

    @task(queue_name="emails", priority=10, max_retries=5, time_limit=30)
    def send_email(to, subject, body): ...

`max_retries`, `time_limit` (seconds) and `http` (who may run it over HTTP: "write",
"admin" or "none") are Conveyor's additions to Django's Task.
Enqueueing inside `transaction.atomic()` is transactional: the task row is part of
your transaction and the message is published only when it commits.
"""

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.tasks import TaskResultStatus
from django.tasks.backends.base import BaseTaskBackend
from django.tasks.base import Task, TaskError, TaskResult
from django.tasks.exceptions import TaskResultDoesNotExist
from django.tasks.signals import task_enqueued

from conveyor import catalog, submission
from conveyor.core.models import TaskRecord, TaskSource, TaskStatus
from conveyor.errors import TaskCancelled
from conveyor.waiting import poll_until


@dataclass(frozen=True, slots=True, kw_only=True)
class ConveyorTask(Task):
    max_retries: int | None = None  # None: settings.CONVEYOR_MAX_RETRIES
    time_limit: float | None = None  # seconds; None: settings.CONVEYOR_TIME_LIMIT_SECONDS
    # Who may run it over HTTP: "write" (any write token), "admin" (admin tokens only) or
    # "none" (only from Django code and schedules). None: settings.CONVEYOR_TASK_HTTP_DEFAULT.
    http: str | None = None
    # Exceptions that fail it at once, without retries (besides conveyor.errors.TaskRejected
    # and Django's SuspiciousOperation): retrying cannot fix them.
    throws: tuple[type[BaseException], ...] = ()

    def s(self, *args: Any, **kwargs: Any) -> Any:
        """A signature of this task for a workflow: `chain(add.s(1, 2), add.s(3))` (conveyor.workflows)."""
        from conveyor.workflows.canvas import Signature

        return Signature(self.module_path, args, kwargs, self.queue_name, self.priority)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConveyorTaskResult(TaskResult):
    """Django's TaskResult, plus waiting for it: `add.enqueue(4, 6).wait(timeout=10).return_value`."""

    def wait(self, timeout: float = 30.0) -> "ConveyorTaskResult":
        """Until the task has finished (SUCCESSFUL, FAILED or CANCELLED), at most `timeout` seconds.

        Raises TimeoutError when it has not. Reads the database again after growing pauses
        (conveyor.waiting); do not call it inside the transaction that enqueued the task.
        """
        if not poll_until(lambda: self._refreshed().is_finished, timeout):
            raise TimeoutError(f"task {self.id} is still {self.status} after {timeout}s")
        return self

    def _refreshed(self) -> "ConveyorTaskResult":
        self.refresh()
        return self


_STATUS = {
    TaskStatus.READY: TaskResultStatus.READY,
    TaskStatus.RUNNING: TaskResultStatus.RUNNING,
    TaskStatus.SUCCESSFUL: TaskResultStatus.SUCCESSFUL,
    TaskStatus.FAILED: TaskResultStatus.FAILED,
    # Django has no CANCELLED: it reads as FAILED with a TaskCancelled error.
    TaskStatus.CANCELLED: TaskResultStatus.FAILED,
}


def to_task_result(record: TaskRecord, task: Task) -> TaskResult:
    errors = [
        TaskError(exception_class_path=e["exception_class_path"], traceback=e.get("traceback", ""))
        for e in record.errors
    ]
    if record.status == TaskStatus.CANCELLED:
        errors.append(
            TaskError(exception_class_path=f"{TaskCancelled.__module__}.{TaskCancelled.__qualname__}", traceback="")
        )
    changes = {"queue_name": record.queue_name, "priority": record.priority}
    if record.run_after:
        changes["run_after"] = record.run_after
    result = ConveyorTaskResult(
        task=task.using(**changes),
        id=str(record.id),
        status=_STATUS[record.status],
        enqueued_at=record.enqueued_at,
        started_at=record.started_at,
        finished_at=record.finished_at,
        last_attempted_at=record.last_attempted_at,
        args=record.args,
        kwargs=record.kwargs,
        backend=record.backend,
        errors=errors,
        worker_ids=list(record.worker_ids),
    )
    object.__setattr__(result, "_return_value", record.return_value)
    return result


class ConveyorBackend(BaseTaskBackend):
    task_class = ConveyorTask
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def enqueue(self, task: Task, args: Any, kwargs: Any) -> TaskResult:
        self.validate_task(task)
        record = submission.prepare(
            submission.TaskSpec(
                task_path=task.module_path,
                args=list(args),
                kwargs=dict(kwargs),
                queue_name=task.queue_name,
                priority=task.priority,
                run_after=task.run_after,
            )
        )
        record.backend = self.alias
        submission.submit_many([record], source=TaskSource.DJANGO)
        result = to_task_result(record, task)
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> TaskResult:
        try:
            record = TaskRecord.objects.get(id=result_id)
        except (TaskRecord.DoesNotExist, ValidationError):
            raise TaskResultDoesNotExist(result_id) from None
        return to_task_result(record, catalog.get(record.task_path).task)
