"""Workflows with real processes: web, two workers and the relay on the real RabbitMQ and PostgreSQL.

The fan-in must happen exactly once: with many members ending at once on two workers,
with a worker SIGKILLed while members run (they are run again elsewhere), and with the
broker down at the moment of fan-in (the callback waits in the outbox)."""

import pytest

from conveyor.core.models import OutboxEntry, TaskRecord, TaskStatus
from conveyor.workflows.models import Workflow, WorkflowStep
from tests.support.processes import http, wait_for
from tests.support.rabbitmq import PrivateNode
from tests.support.worker_deaths import keep_workers_running

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def submit(system, token, body):
    status, answer, headers = http("POST", f"{system.base_url}/api/v1/workflows", body, token)
    assert status == 202, answer
    assert headers["Location"] == f"/api/v1/workflows/{answer['id']}"
    return answer["id"]


def workflow(system, token, workflow_id):
    return http("GET", f"{system.base_url}/api/v1/workflows/{workflow_id}", token=token)[1]


def finished(system, token, workflow_id, timeout=120):
    wait_for(
        lambda: workflow(system, token, workflow_id)["status"] in ("SUCCESSFUL", "FAILED", "CANCELLED"),
        timeout,
        f"workflow {workflow_id} to finish",
    )
    return workflow(system, token, workflow_id)


def callback_tasks(workflow_id):
    """Task rows of the workflow's last step: exactly one means the fan-in happened once."""
    step = WorkflowStep.objects.filter(workflow_id=workflow_id).order_by("-position").first()
    return list(TaskRecord.objects.filter(step_id=step.id))


def adds(n):
    return [{"task": "demo.tasks.add", "args": [i, i]} for i in range(n)]


def test_a_three_step_chain_over_http_gives_the_right_value(start_system, token):
    # Given the services
    system = start_system(workers=2)
    # When chain(add(1, 2), add(3), add(4)) is submitted over HTTP
    body = {"chain": [{"task": "demo.tasks.add", "args": [1, 2]}, {"task": "demo.tasks.add", "args": [3]}]}
    body["chain"].append({"task": "demo.tasks.add", "args": [4]})
    result = finished(system, token, submit(system, token, body))
    # Then it is SUCCESSFUL with 10, and each step's task can be opened
    assert (result["status"], result["return_value"]) == ("SUCCESSFUL", 10)
    values = [
        http("GET", f"{system.base_url}/api/v1/tasks/{s['task_id']}", token=token)[1]["return_value"]
        for s in result["steps"]
    ]
    assert values == [3, 6, 10]


def test_a_chord_of_100_members_sums_and_fans_in_once_many_times_over(start_system, token):
    # Given two workers of four threads
    system = start_system(workers=2)
    # When 20 chords of 100 adds each are submitted at once (members end together on both workers)
    ids = [
        submit(system, token, {"chord": {"group": adds(100), "then": {"task": "demo.tasks.total"}}}) for _ in range(20)
    ]
    # Then each ends SUCCESSFUL with the sum, and each callback has one task that ran once
    for workflow_id in ids:
        result = finished(system, token, workflow_id, timeout=300)
        assert (result["status"], result["return_value"]) == ("SUCCESSFUL", sum(2 * i for i in range(100)))
        [callback] = callback_tasks(workflow_id)
        assert callback.attempts == 1
    # And the members ran on both workers
    workers = {
        w.split(":")[0] + w.split(":")[-1]
        for r in TaskRecord.objects.filter(step_id__isnull=False)
        for w in r.worker_ids
    }
    assert len(workers) >= 2


def test_a_failing_member_fails_the_workflow_and_nothing_hangs(start_system, token):
    system = start_system(workers=2)
    body = {
        "chord": {
            "group": [*adds(5), {"task": "demo.tasks.fail", "args": ["member broke"]}],
            "then": {"task": "demo.tasks.total"},
        }
    }
    result = finished(system, token, submit(system, token, body))
    assert result["status"] == "FAILED"
    assert "demo.tasks.fail" in result["error"] and "member broke" in result["error"]
    assert result["steps"][-1]["status"] == "CANCELLED" and result["steps"][-1]["task_id"] is None


def test_a_worker_killed_while_members_run_still_gives_exactly_one_callback(start_system, token):
    # Given two workers, with leases short enough for a takeover within seconds
    system = start_system(
        workers=2, env={"CONVEYOR_WORKER_LEASE_SECONDS": "4", "CONVEYOR_WORKER_HEARTBEAT_SECONDS": "1"}
    )
    # And a chord of 8 members that each take 2 s (4 per worker)
    body = {"chord": {"group": [{"task": "demo.tasks.sleep", "args": [2]}] * 8, "then": {"task": "demo.tasks.total"}}}
    workflow_id = submit(system, token, body)
    members = WorkflowStep.objects.filter(workflow_id=workflow_id).exclude(position=8)
    wait_for(
        lambda: TaskRecord.objects.filter(step_id__in=members.values("id"), status=TaskStatus.RUNNING).count() == 8,
        30,
        "all members running",
    )
    # When one worker is SIGKILLed mid-run (and started again, as an orchestrator would)
    system.workers[0].kill()
    keep_workers_running(system, lambda: Workflow.objects.get(id=workflow_id).status != "READY", timeout=120)
    # Then the workflow succeeds with every member's value, and the callback ran once
    result = workflow(system, token, workflow_id)
    assert (result["status"], result["return_value"]) == ("SUCCESSFUL", 16)
    [callback] = callback_tasks(workflow_id)
    assert callback.attempts == 1
    # And the killed worker's members were run again (their first run's end was never recorded)
    assert TaskRecord.objects.filter(step_id__in=members.values("id"), attempts=2).count() >= 1


def test_a_member_whose_worker_dies_after_its_side_effect_is_counted_once(start_system, token, tmp_path):
    # Given two workers that know a task which, on its first run, does its side effect and
    # then SIGKILLs its own worker process before its end can be recorded
    system = start_system(
        workers=2,
        env={
            "DJANGO_SETTINGS_MODULE": "tests.crashing.settings",
            "CONVEYOR_WORKER_LEASE_SECONDS": "4",
            "CONVEYOR_WORKER_HEARTBEAT_SECONDS": "1",
        },
    )
    marker = tmp_path / "side-effects"
    # When a chord has that task among its members
    members = [*adds(5), {"task": "tests.crashing.tasks.record_then_die", "args": [str(marker), 100]}]
    workflow_id = submit(system, token, {"chord": {"group": members, "then": {"task": "demo.tasks.total"}}})
    keep_workers_running(system, lambda: Workflow.objects.get(id=workflow_id).status != "READY", timeout=120)
    # Then the side effect happened twice (the member ran again), the callback once, with every value
    assert len(marker.read_text().splitlines()) == 2
    result = workflow(system, token, workflow_id)
    assert (result["status"], result["return_value"]) == ("SUCCESSFUL", sum(2 * i for i in range(5)) + 100)
    [callback] = callback_tasks(workflow_id)
    assert callback.attempts == 1


@pytest.fixture
def private_rabbit():
    node = PrivateNode().start()
    yield node
    node.destroy()


def test_the_broker_down_at_fan_in_delays_the_callback_which_then_runs_once(start_system, token, private_rabbit):
    # Given the services on a private RabbitMQ node, and a chord whose members take 2 s
    system = start_system(workers=2, env={"BROKER_URL": private_rabbit.url})
    body = {"chord": {"group": [{"task": "demo.tasks.sleep", "args": [2]}] * 4, "then": {"task": "demo.tasks.total"}}}
    workflow_id = submit(system, token, body)
    members = WorkflowStep.objects.filter(workflow_id=workflow_id).exclude(position=4)
    wait_for(
        lambda: TaskRecord.objects.filter(step_id__in=members.values("id"), status=TaskStatus.RUNNING).count() == 4,
        30,
        "all members running",
    )
    # When the broker stops while they run
    private_rabbit.stop()
    # Then the members still end, and the callback's task is written and waits in the outbox
    wait_for(lambda: len(callback_tasks(workflow_id)) == 1, 60, "the callback's task")
    [callback] = callback_tasks(workflow_id)
    assert callback.status == TaskStatus.READY
    assert OutboxEntry.objects.filter(task_id=callback.id).exists()
    # And once the broker is back the callback runs, once
    private_rabbit.start()
    result = finished(system, token, workflow_id, timeout=120)
    assert (result["status"], result["return_value"]) == ("SUCCESSFUL", 8)
    [callback] = callback_tasks(workflow_id)
    assert callback.attempts == 1


def test_cancel_and_retry_over_http(start_system, token):
    system = start_system(workers=1)
    # Given a chain whose first step takes 2 s
    body = {"chain": [{"task": "demo.tasks.sleep", "args": [2]}, {"task": "demo.tasks.add", "args": [1]}]}
    workflow_id = submit(system, token, body)
    wait_for(lambda: workflow(system, token, workflow_id)["status"] == "RUNNING", 30, "the first step to start")
    # When it is cancelled while its first step runs
    status, result, _ = http("POST", f"{system.base_url}/api/v1/workflows/{workflow_id}/cancel", token=token)
    assert status == 200 and result["status"] == "CANCELLED"
    # Then the running step finishes, and nothing after it starts
    first = result["steps"][0]["task_id"]
    wait_for(lambda: TaskRecord.objects.get(id=first).status == TaskStatus.SUCCESSFUL, 30, "the running step")
    assert workflow(system, token, workflow_id)["steps"][1]["status"] == "CANCELLED"
    # When it is retried; Then it resumes after the step that succeeded, which does not run again
    status, _, _ = http("POST", f"{system.base_url}/api/v1/workflows/{workflow_id}/retry", token=token)
    assert status == 202
    result = finished(system, token, workflow_id)
    assert (result["status"], result["return_value"]) == ("SUCCESSFUL", 3.0)
    assert TaskRecord.objects.get(id=first).attempts == 1


def test_waiting_for_a_workflow_answers_when_it_ends(start_system, token):
    system = start_system(workers=1)
    workflow_id = submit(system, token, {"chain": [{"task": "demo.tasks.sleep", "args": [1]}]})
    url = f"{system.base_url}/api/v1/workflows/{workflow_id}?wait=30"
    status, body, _ = http("GET", url, token=token, timeout=40)
    assert (status, body["status"], body["return_value"]) == (200, "SUCCESSFUL", 1)


def test_waiting_for_a_task_answers_when_it_ends(start_system, token):
    system = start_system(workers=1)
    status, body, _ = http("POST", f"{system.base_url}/api/v1/tasks", {"task": "demo.tasks.sleep", "args": [1]}, token)
    status, body, _ = http("GET", f"{system.base_url}/api/v1/tasks/{body['id']}?wait=30", token=token, timeout=40)
    assert (status, body["status"], body["return_value"]) == (200, "SUCCESSFUL", 1)
