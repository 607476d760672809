"""The task list's bulk actions: retry, cancel, delete, on a selection or on everything a filter matches."""

import pytest
from django.urls import reverse

from conveyor import states, submission
from conveyor.core.models import OutboxEntry, TaskRecord, TaskStatus
from services.web.dashboard import tasks
from tests.dashboard.conftest import failed_task, make_task, messages_of, status_of

pytestmark = pytest.mark.django_db

URL = reverse("dashboard:tasks-action")


def act(client, action, *records, **data):
    response = client.post(URL, {"action": action, "ids": [str(r.id) for r in records], **data})
    assert response.status_code == 302
    return response


# --- the selected tasks -----------------------------------------------------------------------


def test_retry_selected_makes_failed_tasks_ready_with_an_outbox_entry(operator):
    # Given two FAILED tasks, one of them selected, and no outbox entry
    chosen, other = failed_task(), failed_task()
    OutboxEntry.objects.all().delete()
    # When the selection is retried
    response = act(operator, "retry", chosen)
    # Then the selected one is READY with an entry that will publish it; the other is untouched
    assert status_of(chosen) == TaskStatus.READY
    assert list(OutboxEntry.objects.values_list("task_id", flat=True)) == [chosen.id]
    assert status_of(other) == TaskStatus.FAILED
    assert "Retried 1 task(s)." in messages_of(response)


def test_retry_keeps_the_errors_and_clears_the_end(operator):
    chosen = failed_task(failure_reason="retries exhausted")
    act(operator, "retry", chosen)
    record = TaskRecord.objects.get(id=chosen.id)
    assert (record.errors, record.finished_at, record.failure_reason) == (chosen.errors, None, "")


def test_cancel_selected_cancels_ready_tasks(operator):
    # Given two READY tasks, one selected
    chosen, other = make_task(), make_task()
    # When the selection is cancelled
    response = act(operator, "cancel", chosen)
    # Then it is CANCELLED, saying who did it; the other is READY still
    record = TaskRecord.objects.get(id=chosen.id)
    assert record.status == TaskStatus.CANCELLED
    assert record.failure_reason == "cancelled by operator (dashboard)"
    assert status_of(other) == TaskStatus.READY
    assert "Cancelled 1 task(s)." in messages_of(response)


def test_cancel_leaves_a_running_task_alone_and_says_so(operator):
    running = make_task(status=TaskStatus.RUNNING)
    response = act(operator, "cancel", running)
    assert status_of(running) == TaskStatus.RUNNING
    assert "Left alone: 1 task(s): not READY" in messages_of(response)


def test_delete_selected_deletes_finished_tasks_and_reports_the_open_ones_kept(operator):
    # Given a selection of a SUCCESSFUL, a FAILED and a CANCELLED task, and a READY one
    finished = [make_task(status=s) for s in (TaskStatus.SUCCESSFUL, TaskStatus.FAILED, TaskStatus.CANCELLED)]
    ready = make_task()
    unselected = make_task(status=TaskStatus.SUCCESSFUL)
    # When the selection is deleted
    response = act(operator, "delete", *finished, ready)
    # Then the finished ones are gone, the READY one is kept and reported, the unselected one stays
    assert not TaskRecord.objects.filter(id__in=[t.id for t in finished]).exists()
    assert status_of(ready) == TaskStatus.READY
    assert status_of(unselected) == TaskStatus.SUCCESSFUL
    assert messages_of(response) == [
        "Deleted 3 task(s).",
        "Left alone: 1 task(s): not finished, or a workflow's step",
    ]


def test_retry_refuses_a_workflow_step(operator):
    # Given a FAILED task that is a workflow's step, and an ordinary FAILED task
    step = failed_task(step_id=12345)
    plain = failed_task()
    # When both are retried from the list
    response = act(operator, "retry", step, plain)
    # Then the step is left FAILED (its workflow is retried instead), and that is said
    assert status_of(step) == TaskStatus.FAILED
    assert status_of(plain) == TaskStatus.READY
    assert messages_of(response) == [
        "Retried 1 task(s).",
        "Left alone: 1 task(s): a workflow's step: retry the workflow",
    ]


def test_retry_leaves_tasks_that_did_not_fail_and_says_why(operator):
    ready = make_task()
    response = act(operator, "retry", ready)
    assert status_of(ready) == TaskStatus.READY
    assert not OutboxEntry.objects.filter(task_id=ready.id, created_at__gt=ready.enqueued_at).exists()
    assert "Left alone: 1 task(s): task is READY; only FAILED or CANCELLED tasks can be retried" in messages_of(
        response
    )


def test_no_selection_is_a_warning_and_changes_nothing(operator):
    failed = failed_task()
    response = act(operator, "retry")
    assert status_of(failed) == TaskStatus.FAILED
    assert messages_of(response) == ["No task selected."]


def test_an_unknown_action_is_refused(operator):
    failed = failed_task()
    response = act(operator, "explode", failed, scope="matching")
    assert TaskRecord.objects.filter(id=failed.id).exists()
    assert status_of(failed) == TaskStatus.FAILED
    assert messages_of(response) == ["Unknown action 'explode'."]


def test_after_an_action_the_list_shows_again_with_its_filter(operator):
    failed = failed_task()
    response = act(operator, "retry", failed, status="FAILED", next="/dashboard/tasks/?status=FAILED")
    assert response.url == "/dashboard/tasks/?status=FAILED"


def test_an_action_never_redirects_off_the_dashboard(operator):
    failed = failed_task()
    response = act(operator, "retry", failed, status="FAILED", next="https://evil.example.com/")
    assert response.url == "/dashboard/tasks/?status=FAILED"


# --- everything matching the filter -----------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "status", "after"),
    [
        ("retry", TaskStatus.FAILED, TaskStatus.READY),
        ("retry", TaskStatus.CANCELLED, TaskStatus.READY),
        ("cancel", TaskStatus.READY, TaskStatus.CANCELLED),
        ("delete", TaskStatus.SUCCESSFUL, None),
    ],
)
def test_everything_matching_acts_on_the_matching_rows_only(operator, action, status, after):
    # Given tasks the action applies to, of the filtered task and of another, and others the filter matches
    matching = [make_task("demo.tasks.add", status) for _ in range(3)]
    other_task = [make_task("demo.tasks.noop", status, args=()) for _ in range(2)]
    other_queue = make_task("demo.tasks.add", status, queue_name="emails")
    # When the action is applied to everything matching task=demo.tasks.add, queue=default
    response = act(operator, action, scope="matching", task="demo.tasks.add", queue="default")
    # Then exactly the matching tasks changed
    for record in matching:
        assert TaskRecord.objects.filter(id=record.id).values_list("status", flat=True).first() == after
    for record in [*other_task, other_queue]:
        assert status_of(record) == status
    assert messages_of(response)[0].endswith(" 3 task(s).")


def test_everything_matching_ignores_a_selection(operator):
    # Given a selected FAILED task outside the filter
    selected = failed_task("demo.tasks.noop", args=())
    matching = failed_task("demo.tasks.add")
    # When "everything matching" is chosen
    act(operator, "retry", selected, scope="matching", task="demo.tasks.add")
    # Then the filter decides, not the checkboxes
    assert status_of(matching) == TaskStatus.READY
    assert status_of(selected) == TaskStatus.FAILED


def test_everything_matching_a_text_search(operator):
    hit = failed_task(args=["order-777"])
    miss = failed_task(args=["order-1"])
    act(operator, "delete", scope="matching", q="order-777")
    assert not TaskRecord.objects.filter(id=hit.id).exists()
    assert TaskRecord.objects.filter(id=miss.id).exists()


def test_everything_matching_stops_at_the_bulk_limit_and_says_how_many_more(operator, monkeypatch):
    # Given a limit of 3 per click and 5 FAILED tasks
    monkeypatch.setattr(tasks, "BULK_LIMIT", 3)
    monkeypatch.setattr(tasks, "BATCH", 2)
    failed = [failed_task() for _ in range(5)]
    # When every FAILED task is retried
    response = act(operator, "retry", scope="matching", status="FAILED")
    # Then three are (the newest), and the operator is told two more match
    assert TaskRecord.objects.filter(status=TaskStatus.READY).count() == 3
    newest = sorted(failed, key=lambda t: (t.enqueued_at, t.id), reverse=True)[:3]
    assert {status_of(t) for t in newest} == {TaskStatus.READY}
    assert messages_of(response) == ["Retried 3 task(s).", "2+ more match; each click acts on at most 3."]
    # And, once the list has shown that, the next click does the rest
    operator.get(response.url)
    response = act(operator, "retry", scope="matching", status="FAILED")
    assert TaskRecord.objects.filter(status=TaskStatus.READY).count() == 5
    assert messages_of(response) == ["Retried 2 task(s)."]


def test_a_selection_is_capped_at_the_bulk_limit(operator, monkeypatch):
    monkeypatch.setattr(tasks, "BULK_LIMIT", 2)
    chosen = [failed_task() for _ in range(3)]
    act(operator, "retry", *chosen)
    assert TaskRecord.objects.filter(status=TaskStatus.READY).count() == 2


def test_everything_matching_reports_workflow_steps_left_alone(operator):
    step = failed_task(step_id=999)
    plain = failed_task()
    response = act(operator, "retry", scope="matching", status="FAILED")
    assert (status_of(step), status_of(plain)) == (TaskStatus.FAILED, TaskStatus.READY)
    assert "Left alone: 1 task(s): a workflow's step: retry the workflow" in messages_of(response)


def test_deleting_a_cancelled_task_whose_outbox_entry_is_pending_counts_one_task(operator):
    # Given a task cancelled before its outbox entry was published (e.g. a deferred one)
    record = submission.submit_many([submission.prepare(submission.TaskSpec("demo.tasks.add", [1, 2], {}))])[0]
    states.cancel(record.id, reason="not wanted")
    assert OutboxEntry.objects.filter(task_id=record.id).exists()
    # When it is deleted from the list
    response = act(operator, "delete", record)
    # Then one task is reported deleted, and none left alone
    assert not TaskRecord.objects.filter(id=record.id).exists()
    assert messages_of(response) == ["Deleted 1 task(s)."]


@pytest.mark.parametrize("bad", [{"status": "FAILEDX"}, {"since": "not a time"}], ids=["status", "since"])
def test_everything_matching_with_a_filter_that_is_not_valid_does_nothing(operator, bad):
    # Given failed tasks of two kinds
    one, other = failed_task("demo.tasks.fail"), failed_task("demo.tasks.add")
    # When "everything matching" is posted with a filter part that is not valid (a stale or hand-made form)
    response = operator.post(URL, {"action": "retry", "scope": "matching", "task": "demo.tasks.fail", **bad})
    # Then nothing is retried (the filter is not widened by dropping that part), and the page says why
    assert (status_of(one), status_of(other)) == (TaskStatus.FAILED, TaskStatus.FAILED)
    assert messages_of(response)[0].startswith("Nothing done: the filter is not valid")


def test_everything_matching_with_u0000_in_the_filter_is_a_400(operator):
    one = failed_task("demo.tasks.fail")
    response = operator.post(URL, {"action": "retry", "scope": "matching", "q": "\x00"})
    assert response.status_code == 400
    assert status_of(one) == TaskStatus.FAILED
