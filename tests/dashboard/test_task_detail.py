"""One task's page: what it shows (attempts, arguments, reason, origin) and its retry and cancel buttons."""

import html
import re

import pytest
from django.urls import reverse

from conveyor.core.models import OutboxEntry, TaskRecord, TaskStatus
from conveyor.scheduling.models import Schedule
from conveyor.workflows import canvas, handle
from tests.dashboard.conftest import error, failed_task, make_task, messages_of, post_forms, status_of

pytestmark = pytest.mark.django_db


def page(client, record):
    response = client.get(reverse("dashboard:task", args=[record.id]))
    assert response.status_code == 200
    return response.content.decode()


def test_every_attempt_shows_its_exception_and_traceback(viewer):
    # Given a task that failed twice, differently
    first = error("builtins.KeyError", "'customer'", 'File "a.py", line 1, in first_frame', n=1)
    second = error("builtins.ValueError", "bad amount", 'File "b.py", line 2, in second_frame', n=2)
    record = failed_task(errors=[first, second], attempts=2)
    # When its page is opened
    content = page(viewer, record)
    # Then each attempt is there, with its exception class, message and traceback
    assert content.count('<details class="attempt"') == 2
    for attempt in (first, second):
        assert html.escape(attempt["traceback"]) in content
        assert attempt["exception_class_path"] in content
        assert html.escape(attempt["message"]) in content


def test_the_arguments_are_shown(viewer):
    record = make_task(args=["invoice-17", {"amount": 12.5}], kwargs={"notify": True})
    content = page(viewer, record)
    assert "invoice-17" in content
    assert "&quot;amount&quot;: 12.5" in content
    assert "&quot;notify&quot;: true" in content


def test_the_failure_reason_is_shown(viewer):
    record = failed_task(errors=[], failure_reason="dead-lettered: worker died 3 times while running it")
    assert "dead-lettered: worker died 3 times while running it" in page(viewer, record)


def test_a_scheduled_task_links_to_its_schedule(viewer):
    Schedule.objects.create(name="nightly-report", task_path="demo.tasks.add", args=[1, 2], interval_seconds=3600)
    record = make_task(schedule_name="nightly-report")
    assert f'href="{reverse("dashboard:scheduled")}#schedule-nightly-report"' in page(viewer, record)


def test_a_workflow_step_links_to_its_workflow(viewer):
    # Given a workflow's first step
    workflow = handle.enqueue(canvas.chain(canvas.Signature("demo.tasks.add", (1, 2))))
    step_task = TaskRecord.objects.get(id=workflow.steps[0].task_id)
    # When its page is opened
    content = page(viewer, step_task)
    # Then it links to the workflow
    assert f'href="{reverse("dashboard:workflow", args=[workflow.id])}"' in content


def test_a_task_of_neither_links_to_no_schedule_or_workflow(viewer):
    content = page(viewer, make_task())
    assert "#schedule-" not in content
    assert not re.search(r"/dashboard/workflows/[0-9a-f-]{36}/", content)


def test_the_retry_button_retries(operator):
    # Given a FAILED task and no outbox entry
    record = failed_task()
    OutboxEntry.objects.all().delete()
    assert post_forms(operator.get(reverse("dashboard:task", args=[record.id]))) == [
        reverse("dashboard:task-retry", args=[record.id])
    ]
    # When its retry button is pressed
    response = operator.post(reverse("dashboard:task-retry", args=[record.id]))
    # Then it is READY, with an outbox entry, and the page says so
    assert response.url == reverse("dashboard:task", args=[record.id])
    assert status_of(record) == TaskStatus.READY
    assert OutboxEntry.objects.filter(task_id=record.id).count() == 1
    assert messages_of(response) == ["Retried: the task is READY again."]


def test_the_cancel_button_cancels(operator):
    record = make_task()
    assert post_forms(operator.get(reverse("dashboard:task", args=[record.id]))) == [
        reverse("dashboard:task-cancel", args=[record.id])
    ]
    response = operator.post(reverse("dashboard:task-cancel", args=[record.id]))
    assert status_of(record) == TaskStatus.CANCELLED
    assert messages_of(response) == ["Cancelled."]


def test_retrying_a_task_that_did_not_fail_is_refused_with_a_message(operator):
    record = make_task(status=TaskStatus.SUCCESSFUL)
    response = operator.post(reverse("dashboard:task-retry", args=[record.id]))
    assert status_of(record) == TaskStatus.SUCCESSFUL
    assert messages_of(response) == ["Not retried: task is SUCCESSFUL; only FAILED or CANCELLED tasks can be retried"]


def test_cancelling_a_running_task_is_refused_with_a_message(operator):
    record = make_task(status=TaskStatus.RUNNING)
    response = operator.post(reverse("dashboard:task-cancel", args=[record.id]))
    assert status_of(record) == TaskStatus.RUNNING
    assert messages_of(response) == ["Not cancelled: task is RUNNING; only READY tasks can be cancelled"]


def test_a_workflow_step_offers_no_retry_and_refuses_one(operator):
    # Given a FAILED workflow step
    record = failed_task(step_id=4242)
    # Then no retry button is shown, and a posted retry is refused
    assert post_forms(operator.get(reverse("dashboard:task", args=[record.id]))) == []
    response = operator.post(reverse("dashboard:task-retry", args=[record.id]))
    assert status_of(record) == TaskStatus.FAILED
    assert messages_of(response)[0].startswith("Not retried: this task is a workflow's step")


def test_acting_on_an_unknown_task_says_so(operator):
    task_id = "00000000-0000-0000-0000-000000000000"
    response = operator.post(reverse("dashboard:task-cancel", args=[task_id]))
    assert messages_of(response) == [f"Not cancelled: no task {task_id}"]
