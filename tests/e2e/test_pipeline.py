"""The whole pipeline as real processes: web, two workers, the relay, RabbitMQ, PostgreSQL."""

import signal
from datetime import UTC

import pytest

from conveyor.core.models import TaskRecord, TaskStatus
from tests.support.processes import http, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def submit(system, token, task, *args):
    status, body, headers = http("POST", f"{system.base_url}/api/v1/tasks", {"task": task, "args": list(args)}, token)
    assert status == 202, body
    assert headers["Location"] == f"/api/v1/tasks/{body['id']}"
    return body["id"]


def wait_all_finished(ids, timeout=90):
    wait_for(
        lambda: (
            TaskRecord.objects.filter(id__in=ids, status__in=[TaskStatus.SUCCESSFUL, TaskStatus.FAILED]).count()
            == len(ids)
        ),
        timeout,
        f"{len(ids)} tasks to finish",
    )


def test_tasks_submitted_over_http_all_end_successful_with_the_right_value(start_system, token):
    # Given web, two worker processes and the relay
    system = start_system(workers=2)
    # When 60 add tasks are submitted over HTTP
    ids = {submit(system, token, "demo.tasks.add", i, 1000): i for i in range(60)}
    # Then every one ends SUCCESSFUL with i + 1000, as the API reports it
    wait_all_finished(list(ids))
    for task_id, i in ids.items():
        status, body, _ = http("GET", f"{system.base_url}/api/v1/tasks/{task_id}", token=token)
        assert status == 200
        assert (body["status"], body["return_value"]) == ("SUCCESSFUL", i + 1000)


def test_worker_killed_mid_task_leaves_it_to_be_redelivered(start_system, token):
    # Given two workers and slow tasks, some of them running
    system = start_system(workers=2)
    ids = [submit(system, token, "demo.tasks.sleep", 2) for _ in range(6)]
    wait_for(lambda: TaskRecord.objects.filter(id__in=ids, status=TaskStatus.RUNNING).exists(), 30, "a task to start")
    running = TaskRecord.objects.filter(id__in=ids, status=TaskStatus.RUNNING).first()
    victim_pid = int(running.worker_ids[-1].rsplit(":", 1)[1])
    victim = next(w for w in system.workers if victim_pid in w.children() or w.proc.pid == victim_pid)
    # When that worker's processes are killed with SIGKILL in the middle of the task
    victim.signal_group(signal.SIGKILL)
    # Then RabbitMQ redelivers its messages to the other worker and every task ends SUCCESSFUL
    wait_all_finished(ids, timeout=120)
    assert set(TaskRecord.objects.filter(id__in=ids).values_list("status", flat=True)) == {TaskStatus.SUCCESSFUL}
    running.refresh_from_db()
    assert running.attempts >= 2
    assert len(set(running.worker_ids)) >= 2


def test_sigterm_lets_a_running_task_finish(start_system, token):
    # Given one worker running a 2-second task
    system = start_system(workers=1)
    task_id = submit(system, token, "demo.tasks.sleep", 2)
    wait_for(lambda: TaskRecord.objects.get(id=task_id).status == TaskStatus.RUNNING, 30, "the task to start")
    # When the whole worker process group gets SIGTERM (as honcho and a terminal send it)
    system.workers[0].signal_group(signal.SIGTERM)
    # Then it finishes the task before exiting
    system.workers[0].proc.wait(timeout=60)
    record = TaskRecord.objects.get(id=task_id)
    assert record.status == TaskStatus.SUCCESSFUL
    assert record.attempts == 1


def test_failed_task_is_visible_with_its_error_and_can_be_retried(start_system, token):
    system = start_system(workers=1)
    task_id = submit(system, token, "demo.tasks.fail", "bad input")
    wait_all_finished([task_id])
    status, body, _ = http("GET", f"{system.base_url}/api/v1/tasks/{task_id}", token=token)
    assert body["status"] == "FAILED"
    assert body["errors"][0]["exception_class_path"] == "demo.tasks.DemoFailure"
    assert "bad input" in body["errors"][0]["traceback"]
    status, body, _ = http("POST", f"{system.base_url}/api/v1/tasks/{task_id}/retry", token=token)
    assert status == 202
    wait_for(lambda: TaskRecord.objects.get(id=task_id).attempts == 2, 30, "the retry to run")
    wait_all_finished([task_id])


def test_deferred_task_runs_once_due_and_not_before(start_system, token):
    from datetime import datetime, timedelta

    # Given a task that must not start for 3 seconds
    system = start_system(workers=1)
    run_after = datetime.now(UTC) + timedelta(seconds=3)
    status, body, _ = http(
        "POST",
        f"{system.base_url}/api/v1/tasks",
        {"task": "demo.tasks.add", "args": [1, 1], "run_after": run_after.isoformat()},
        token,
    )
    assert status == 202
    # When time passes; Then the relay publishes it once due and it runs, not earlier
    wait_all_finished([body["id"]], timeout=60)
    record = TaskRecord.objects.get(id=body["id"])
    assert record.status == TaskStatus.SUCCESSFUL
    assert record.started_at >= run_after
