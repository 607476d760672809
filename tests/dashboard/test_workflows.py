"""The workflow pages: the list (status filter, pages) and one workflow with its cancel and retry."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from conveyor.core.models import TaskRecord, TaskStatus
from conveyor.workflows import canvas, handle, progress
from conveyor.workflows.models import Workflow
from services.web.dashboard import workflows
from tests.dashboard.conftest import messages_of, post_forms

pytestmark = pytest.mark.django_db

LIST = reverse("dashboard:workflows")


def start(*args):
    return handle.enqueue(
        canvas.chain(canvas.Signature("demo.tasks.add", args or (1, 2)), canvas.Signature("demo.tasks.add", (3,)))
    )


def status(workflow):
    return Workflow.objects.get(id=workflow.id).status


def listed(response):
    return re.findall(r'<td><a href="/dashboard/workflows/([0-9a-f-]{36})/">', response.content.decode())


def test_the_detail_page_lists_the_steps_with_links_to_their_tasks(viewer):
    workflow = start()
    content = viewer.get(reverse("dashboard:workflow", args=[workflow.id])).content.decode()
    first = workflow.steps[0]
    assert f'href="{reverse("dashboard:task", args=[first.task_id])}"' in content
    assert "WAITING" in content  # the second step has no task yet


def test_cancel_an_open_workflow(operator):
    # Given an open workflow, whose page offers Cancel
    workflow = start()
    url = reverse("dashboard:workflow", args=[workflow.id])
    assert post_forms(operator.get(url)) == [reverse("dashboard:workflow-cancel", args=[workflow.id])]
    # When it is cancelled
    response = operator.post(reverse("dashboard:workflow-cancel", args=[workflow.id]))
    # Then it is CANCELLED, back on its page
    assert status(workflow) == TaskStatus.CANCELLED
    assert response.url == url
    assert messages_of(response) == ["Workflow cancelled: steps not started will not start."]


def test_retry_a_cancelled_workflow_from_its_stopped_steps(operator):
    # Given a workflow whose first step's task was cancelled (so the workflow is CANCELLED)
    workflow = start()
    first_task = workflow.steps[0].task_id
    operator.post(reverse("dashboard:task-cancel", args=[first_task]))
    assert status(workflow) == TaskStatus.CANCELLED
    assert post_forms(operator.get(reverse("dashboard:workflow", args=[workflow.id]))) == [
        reverse("dashboard:workflow-retry", args=[workflow.id])
    ]
    # When it is retried
    response = operator.post(reverse("dashboard:workflow-retry", args=[workflow.id]))
    # Then it is open again and its first step's task is READY
    assert handle.get(workflow.id).status == TaskStatus.READY
    assert TaskRecord.objects.get(id=first_task).status == TaskStatus.READY
    assert messages_of(response)[-1] == "Workflow retried from its failed steps."


def test_cancelling_a_finished_workflow_is_refused_with_a_message(operator):
    workflow = start()
    progress.cancel(workflow.id)
    response = operator.post(reverse("dashboard:workflow-cancel", args=[workflow.id]))
    assert status(workflow) == TaskStatus.CANCELLED
    assert messages_of(response)[0].startswith("Not cancelled: workflow is CANCELLED")


def test_retrying_an_open_workflow_is_refused_with_a_message(operator):
    workflow = start()
    response = operator.post(reverse("dashboard:workflow-retry", args=[workflow.id]))
    assert status(workflow) == TaskStatus.READY
    assert messages_of(response) == [
        "Not retried: workflow is READY; only FAILED or CANCELLED workflows can be retried"
    ]


def test_the_list_filters_by_status(viewer):
    running = start()
    cancelled = start()
    progress.cancel(cancelled.id)
    assert listed(viewer.get(LIST, {"status": "CANCELLED"})) == [cancelled.id]
    assert set(listed(viewer.get(LIST))) == {running.id, cancelled.id}


def test_the_list_pages_through_every_workflow_once_newest_first(viewer, monkeypatch):
    # Given 7 workflows, three created at the same instant, and pages of 3
    monkeypatch.setattr(workflows, "PAGE_SIZE", 3)
    ids = [start().id for _ in range(7)]
    base = timezone.now() - timedelta(hours=1)
    for n, workflow_id in enumerate(ids):
        Workflow.objects.filter(id=workflow_id).update(created_at=base + timedelta(seconds=min(n, 3)))
    expected = [str(w) for _, w in sorted(Workflow.objects.values_list("created_at", "id"), reverse=True)]
    # When the "older" links are followed
    seen, url = [], LIST
    while url:
        response = viewer.get(url)
        seen += listed(response)
        found = re.search(r'<a href="([^"]+)">older', response.content.decode())
        url = found.group(1).replace("&amp;", "&") if found else None
    # Then every workflow once, in order
    assert seen == expected
