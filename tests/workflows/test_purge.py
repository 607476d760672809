"""The purge of old finished tasks keeps workflows whole: a workflow goes with all its tasks, or none of them."""

from datetime import timedelta

import pytest
from django.utils import timezone

from conveyor.core.models import TaskRecord, TaskStatus
from conveyor.core.tasks import purge_finished_tasks
from conveyor.workflows import chain
from conveyor.workflows.models import Workflow, WorkflowStep
from demo.tasks import add

pytestmark = pytest.mark.django_db


def finished_chain(days_ago, status=TaskStatus.SUCCESSFUL):
    """A two-step chain whose first task finished `days_ago`; the workflow itself as `status`."""
    wf = chain(add.s(1, 2), add.s(3)).enqueue()
    long_ago = timezone.now() - timedelta(days=days_ago)
    TaskRecord.objects.filter(id=wf.steps[0].task_id).update(status=TaskStatus.SUCCESSFUL, finished_at=long_ago)
    finished_at = long_ago if status != TaskStatus.READY else None
    Workflow.objects.filter(id=wf.id).update(status=status, finished_at=finished_at)
    return wf


def test_an_old_finished_workflow_goes_with_its_steps_and_tasks():
    # Given a workflow that finished 40 days ago
    wf = finished_chain(40)
    # When tasks older than 30 days are purged
    result = purge_finished_tasks.call(older_than_days=30)
    # Then the workflow, its steps and its task are gone
    assert result["deleted_workflows"] == 1 and result["deleted_tasks"] == 1
    assert not Workflow.objects.filter(id=wf.id).exists()
    assert not WorkflowStep.objects.filter(workflow_id=wf.id).exists()


def test_an_old_task_of_a_running_workflow_is_kept():
    # Given a running workflow whose first task finished 40 days ago
    wf = finished_chain(40, status=TaskStatus.READY)
    # When tasks older than 30 days are purged
    purge_finished_tasks.call(older_than_days=30)
    # Then its task is kept: the workflow still reads whole
    assert TaskRecord.objects.filter(id=wf.steps[0].task_id).exists()
    assert WorkflowStep.objects.get(workflow_id=wf.id, position=0).task_id is not None
