"""A task's status and source: the words every module uses, from one enum each.

Apart from the models so that modules loaded before Django's app registry (metrics,
Dramatiq middleware) can use them too.
"""

from django.db import models


class TaskStatus(models.TextChoices):
    # Same values as django.tasks.TaskResultStatus, plus CANCELLED.
    READY = "READY"
    RUNNING = "RUNNING"
    SUCCESSFUL = "SUCCESSFUL"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


FINISHED_STATUSES = (TaskStatus.SUCCESSFUL, TaskStatus.FAILED, TaskStatus.CANCELLED)


class TaskSource(models.TextChoices):
    API = "api"
    DJANGO = "django"
    SCHEDULER = "scheduler"


# A task is "open" (READY or RUNNING) or in its final status. The table's status index is on
# this group, not on the status: starting a task (READY -> RUNNING) then changes no indexed
# column, so PostgreSQL updates the row in place (a HOT update) without touching any index.
OPEN = "open"
OPEN_STATUSES = (TaskStatus.READY, TaskStatus.RUNNING)


def status_group(status: str) -> str:
    """The value of TaskRecord.status_group for a status."""
    return OPEN if status in OPEN_STATUSES else str(status)
