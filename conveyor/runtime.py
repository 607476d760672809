"""What a running task can ask about itself (set by the worker's Lifecycle middleware)."""

import threading

_local = threading.local()


def set_current(task_id, task_result=None):
    _local.task_id = task_id
    _local.task_result = task_result


def clear_current():
    _local.task_id = None
    _local.task_result = None


def current_task_id():
    return getattr(_local, "task_id", None)


def current_task_result():
    return getattr(_local, "task_result", None)


def set_progress(progress):
    """Record progress (any JSON value, e.g. {"done": 3, "total": 10}) on the running task.

    A no-op outside a worker, so a task function can be called directly in tests.
    """
    task_id = current_task_id()
    if task_id is None:
        return
    from conveyor.core.models import TaskRecord

    TaskRecord.objects.filter(id=task_id).update(progress=progress)
