"""Workflows run on the StubBroker: values flow, fan-in happens once, failures end the workflow."""

import pytest
from django.db import transaction

from conveyor import states
from conveyor.core.models import TaskRecord, TaskStatus
from conveyor.errors import NotCancellable, NotRetryable
from conveyor.workflows import chain, chord, group, handle, progress
from conveyor.workflows.models import Workflow, WorkflowStep
from demo.tasks import add, fail, noop, total
from tests.conftest import publish_pending_outbox
from tests.workflows.support import run_until_finished

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_chain_gives_each_step_the_previous_value(stub_broker, stub_worker):
    # Given chain(add(1, 2), add(3), add(4))
    wf = chain(add.s(1, 2), add.s(3), add.s(4)).enqueue()
    # When it runs
    result = run_until_finished(stub_broker, stub_worker, wf.id)
    # Then its value is 10, and every step succeeded in order
    assert (result.status, result.return_value) == ("SUCCESSFUL", 10)
    assert [s.status for s in result.steps] == ["SUCCESSFUL"] * 3


def test_the_seed_example_waits_for_its_result(stub_broker, stub_worker):
    # Given the seed's add(4, 6) as a one-step chain
    wf = chain(add.s(4, 6)).enqueue()
    # When it has run; Then its value is 10
    assert run_until_finished(stub_broker, stub_worker, wf.id).return_value == 10


def test_a_chord_gives_the_callback_every_value_in_order(stub_broker, stub_worker):
    # Given a chord of 20 adds and total
    wf = chord(group(add.s(i, i) for i in range(20)), total.s()).enqueue()
    # When it runs; Then total got every member's value: the sum
    result = run_until_finished(stub_broker, stub_worker, wf.id)
    assert (result.status, result.return_value) == ("SUCCESSFUL", sum(2 * i for i in range(20)))
    callback = TaskRecord.objects.get(id=result.steps[-1].task_id)
    assert callback.args == [[2 * i for i in range(20)]]


def test_a_group_inside_a_chain_gets_the_value_and_gives_a_list(stub_broker, stub_worker):
    # Given chain(add(1, 1), group(add(10), add(20)), total)
    wf = chain(add.s(1, 1), group(add.s(10), add.s(20)), total.s()).enqueue()
    # When it runs; Then total got [12, 22]
    assert run_until_finished(stub_broker, stub_worker, wf.id).return_value == 34


def test_a_group_alone_returns_its_list(stub_broker, stub_worker):
    wf = group(add.s(1, 1), chain(add.s(2, 2), add.s(1))).enqueue()
    assert run_until_finished(stub_broker, stub_worker, wf.id).return_value == [2, 5]


def test_a_failing_member_fails_the_workflow_and_cancels_what_comes_after(stub_broker, stub_worker):
    # Given a chord with a member that fails for good (fail has no retries)
    wf = chord(group(add.s(1, 1), fail.s("boom")), total.s()).enqueue()
    # When it runs
    result = run_until_finished(stub_broker, stub_worker, wf.id)
    # Then it is FAILED, its error names the failing step, and the callback never gets a task
    assert result.status == "FAILED"
    assert "step 1 (demo.tasks.fail at workflow.chord.group[1]) failed" in result.error
    assert [s.status for s in result.steps] == ["SUCCESSFUL", "FAILED", "CANCELLED"]
    assert result.steps[2].task_id is None


def test_on_failure_continue_keeps_going_with_the_error_as_a_value(stub_broker, stub_worker):
    # Given a group that continues past failures
    wf = handle.enqueue(group(add.s(1, 1), fail.s("boom")), on_failure="continue")
    # When it runs; Then it ends (no hang) with the failed member's error in its place
    result = run_until_finished(stub_broker, stub_worker, wf.id)
    assert result.return_value[0] == 2
    assert result.return_value[1]["error"]["status"] == "FAILED"
    assert "boom" in result.return_value[1]["error"]["message"]
    # And it is FAILED, since one of its last steps failed
    assert result.status == "FAILED"


def test_a_repeated_report_of_a_step_end_counts_once():
    # Given a chain (no worker runs here) whose first task ended SUCCESSFUL, and that end reported
    wf = chain(add.s(1, 2), add.s(3), add.s(4)).enqueue()
    first = WorkflowStep.objects.get(workflow_id=wf.id, position=0)
    TaskRecord.objects.filter(id=first.task_id).update(status=TaskStatus.SUCCESSFUL, return_value=3)
    with transaction.atomic():
        progress.steps_ended([progress.StepEnd(first.id, TaskStatus.SUCCESSFUL)])
    second = WorkflowStep.objects.get(workflow_id=wf.id, position=1)
    assert TaskRecord.objects.get(step_id=second.id).args == [3, 3]
    # When the same end is reported again (a duplicate message of that task, say)
    with transaction.atomic():
        progress.steps_ended([progress.StepEnd(first.id, TaskStatus.SUCCESSFUL)])
    # Then nothing changes: still one task for step 2, and two steps remaining
    assert TaskRecord.objects.filter(step_id=second.id).count() == 1
    assert Workflow.objects.get(id=wf.id).remaining == 2


def test_cancel_cancels_steps_not_started_and_nothing_after_runs(stub_broker):
    # Given a chain whose first step has not run yet (no worker runs here)
    wf = chain(add.s(1, 2), add.s(3)).enqueue()
    # When it is cancelled
    progress.cancel(wf.id)
    # Then its READY task is CANCELLED, the later step never gets one, and a second cancel is refused
    result = handle.get(wf.id)
    assert (result.status, [s.status for s in result.steps]) == ("CANCELLED", ["CANCELLED", "CANCELLED"])
    with pytest.raises(NotCancellable):
        progress.cancel(wf.id)
    assert handle.get(wf.id).steps[1].task_id is None


def test_cancelling_a_step_task_cancels_the_workflow(stub_broker):
    # Given a chain whose first task is READY
    wf = chain(add.s(1, 2), add.s(3)).enqueue()
    # When that task is cancelled on its own; Then the workflow ends CANCELLED, naming the step
    states.cancel(wf.steps[0].task_id, reason="by hand")
    result = handle.get(wf.id)
    assert result.status == "CANCELLED" and "step 0" in result.error


def test_retry_resumes_from_the_failed_step_and_keeps_what_succeeded(stub_broker, stub_worker, monkeypatch):
    # Given a chain whose middle step failed for good
    wf = chain(add.s(1, 2), fail.s(), add.s(1)).enqueue()
    failed = run_until_finished(stub_broker, stub_worker, wf.id)
    assert failed.status == "FAILED"
    first_task = TaskRecord.objects.get(id=failed.steps[0].task_id)
    # When the failed step's task is retried on its own; Then it is refused: retry the workflow
    with pytest.raises(NotRetryable, match="retry the workflow"):
        states.retry(failed.steps[1].task_id)
    # When the workflow is retried (the failing step still fails)
    progress.retry(wf.id)
    again = run_until_finished(stub_broker, stub_worker, wf.id)
    # Then the first step did not run again, the failed one ran twice, the last never started
    first_task.refresh_from_db()
    assert first_task.attempts == 1
    assert TaskRecord.objects.get(id=again.steps[1].task_id).attempts == 2
    assert again.status == "FAILED" and again.steps[2].status == "CANCELLED"
    # And a workflow still running cannot be retried
    wf2 = chain(noop.s()).enqueue()
    with pytest.raises(NotRetryable):
        progress.retry(wf2.id)


def test_task_results_can_be_waited_for(stub_broker, stub_worker):
    # Given a task enqueued from Django code
    result = add.enqueue(4, 6)
    publish_pending_outbox()
    stub_broker.join("default", fail_fast=False)
    stub_worker.join()
    # When it is waited for; Then its value is there (the seed's result.get())
    assert result.wait(timeout=10).return_value == 10


def test_waiting_for_an_unfinished_task_times_out(stub_broker):
    result = noop.enqueue()
    with pytest.raises(TimeoutError):
        result.wait(timeout=0.1)


def test_a_schedule_can_fire_a_workflow(stub_broker, stub_worker):
    # Given a schedule whose target is a chain
    from conveyor.scheduling import firing
    from conveyor.scheduling.models import Fire, Schedule

    schedule = Schedule.objects.create(
        name="nightly-chain",
        workflow={"chain": [{"task": "demo.tasks.add", "args": [4, 6]}, {"task": "demo.tasks.add", "args": [1]}]},
        interval_seconds=3600,
    )
    schedule.validate_definition()
    # When it fires
    result = firing.run_now(schedule)
    # Then a workflow started, recorded on the fire, which runs to its value
    fire = Fire.objects.get(schedule=schedule)
    assert fire.workflow_id == result.workflow_id and fire.task_id is None
    workflow = Workflow.objects.get(id=result.workflow_id)
    assert (workflow.schedule_name, workflow.source) == ("nightly-chain", "scheduler")
    assert run_until_finished(stub_broker, stub_worker, workflow.id).return_value == 11


def test_a_schedule_with_both_a_task_and_a_workflow_is_refused():
    from conveyor.errors import InvalidSchedule
    from conveyor.scheduling.models import Schedule

    schedule = Schedule(
        name="both", task_path="demo.tasks.noop", workflow={"chain": [{"task": "demo.tasks.noop"}]}, interval_seconds=60
    )
    with pytest.raises(InvalidSchedule, match="a task or a workflow"):
        schedule.validate_definition()
