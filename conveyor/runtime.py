"""What a running task can ask about itself (set by the worker's Lifecycle middleware)."""

import threading
from collections.abc import Callable
from typing import Any

from django.tasks.base import TaskResult

from conveyor import states

_local = threading.local()


def set_current(task_id: str, task_result: Callable[[], TaskResult | None] | None = None) -> None:
    """The task this thread runs now; `task_result` builds its TaskResult when first asked for."""
    _local.task_id = task_id
    _local.task_result = task_result


def clear_current() -> None:
    _local.task_id = None
    _local.task_result = None


def current_task_id() -> str | None:
    return getattr(_local, "task_id", None)


def current_task_result() -> TaskResult | None:
    # Built on demand: most tasks never ask, and building one per run was visible in profiles.
    factory = getattr(_local, "task_result", None)
    if factory is None or isinstance(factory, TaskResult):
        return factory
    _local.task_result = factory()
    return _local.task_result


def set_progress(progress: Any) -> None:
    """Record progress (any JSON value, e.g. {"done": 3, "total": 10}) on the running task.

    A no-op outside a worker, so a task function can be called directly in tests.
    """
    task_id = current_task_id()
    if task_id is not None:
        states.set_progress(task_id, progress)
