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
