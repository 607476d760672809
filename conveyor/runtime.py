"""What a running task can ask about itself (set by the worker's Lifecycle middleware)."""

import threading
from typing import Any

from django.tasks.base import TaskResult

from conveyor import states

_local = threading.local()


def set_current(task_id: str, task_result: TaskResult | None = None) -> None:
    _local.task_id = task_id
    _local.task_result = task_result


def clear_current() -> None:
    _local.task_id = None
    _local.task_result = None


def current_task_id() -> str | None:
    return getattr(_local, "task_id", None)


def current_task_result() -> TaskResult | None:
    return getattr(_local, "task_result", None)


def set_progress(progress: Any) -> None:
    """Record progress (any JSON value, e.g. {"done": 3, "total": 10}) on the running task.

    A no-op outside a worker, so a task function can be called directly in tests.
    """
    task_id = current_task_id()
    if task_id is not None:
        states.set_progress(task_id, progress)
