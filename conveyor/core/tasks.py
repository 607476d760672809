"""Conveyor's own maintenance tasks (found by the catalog like any app's tasks.py)."""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.tasks import task
from django.utils import timezone

from conveyor.core.models import FINISHED_STATUSES, TaskRecord
from conveyor.scheduling import periodic
from conveyor.scheduling.models import Fire
from conveyor.workflows.models import Workflow, WorkflowStep

PURGE_BATCH = 2000


@periodic(name="conveyor.purge-finished-tasks", cron="15 3 * * *", timezone="UTC", coalesce=True)
# Deletes every owner's records: admin tokens only, never listed for others.
@task(time_limit=900, http="admin")
def purge_finished_tasks(older_than_days: int | None = None) -> dict:
    """Delete finished task records (SUCCESSFUL, FAILED, CANCELLED) older than the retention.

    older_than_days defaults to CONVEYOR_TASK_RETENTION_DAYS on the worker. Deletes in
    batches so no transaction holds many row locks; scheduler Fire rows older than the
    cutoff go too (their unique keys are for fire times long past).

    A workflow goes whole: once it finished before the cutoff, with its steps and all their
    tasks; until then none of its tasks is deleted, so a workflow can always be read (and
    a failed one retried) with every step it had.
    """
    days = settings.CONVEYOR_TASK_RETENTION_DAYS if older_than_days is None else older_than_days
    if days < 0:
        raise ValueError("older_than_days must be >= 0")
    cutoff = timezone.now() - timedelta(days=days)
    workflows = deleted = 0
    while True:
        batch = list(
            Workflow.objects.filter(status__in=FINISHED_STATUSES, finished_at__lt=cutoff).values_list("id", flat=True)[
                :PURGE_BATCH
            ]
        )
        if not batch:
            break
        with transaction.atomic():
            step_ids = list(WorkflowStep.objects.filter(workflow_id__in=batch).values_list("id", flat=True))
            _, by_model = TaskRecord.objects.filter(step_id__in=step_ids).delete()
            deleted += by_model.get(TaskRecord._meta.label, 0)
            Workflow.objects.filter(id__in=batch).delete()
        workflows += len(batch)
    while True:
        ids = list(
            # status_group is what the status index is on (conveyor/status.py).
            TaskRecord.objects.filter(
                status_group__in=FINISHED_STATUSES, finished_at__lt=cutoff, step_id__isnull=True
            ).values_list("id", flat=True)[:PURGE_BATCH]
        )
        if not ids:
            break
        TaskRecord.objects.filter(id__in=ids).delete()
        deleted += len(ids)
    fires, _ = Fire.objects.filter(fire_time__lt=cutoff).delete()
    return {"deleted_tasks": deleted, "deleted_workflows": workflows, "deleted_fires": fires, "older_than_days": days}
