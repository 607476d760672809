"""A task that kills its worker process is not redelivered for ever, and the other workers go on."""

import time

import pika
import pytest
from django.conf import settings

from conveyor.core.models import TaskRecord, TaskStatus
from tests.support.processes import http, wait_for
from tests.support.rabbitmq import purge_queues

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

MAX_DEATHS = 3


def dead_letters(queue="default"):
    connection = pika.BlockingConnection(pika.URLParameters(settings.BROKER_URL))
    try:
        return connection.channel().queue_declare(f"{queue}.XQ", passive=True).method.message_count
    finally:
        connection.close()


def keep_workers_running(system, until, timeout):
    """What an orchestrator does (compose's restart policy): start a worker again when it exits."""
    deadline = time.monotonic() + timeout
    restarts = 0
    while time.monotonic() < deadline:
        if until():
            return restarts
        for worker in system.workers:
            if worker.proc.poll() is not None:
                worker.log.close()
                worker.start()
                restarts += 1
        time.sleep(0.2)
    raise TimeoutError(f"timed out after {timeout}s ({restarts} worker restarts)")


def test_a_task_that_kills_its_worker_ends_failed_after_the_limit_and_the_workers_go_on(start_system, token):
    purge_queues("default", "default.DQ", "default.XQ")
    # Given two worker services (each one Dramatiq process) that know a task which exits its process
    system = start_system(
        workers=2,
        env={
            "DJANGO_SETTINGS_MODULE": "tests.crashing.settings",
            "CONVEYOR_MAX_WORKER_DEATHS": str(MAX_DEATHS),
            "CONVEYOR_WORKER_LEASE_SECONDS": "5",
            "CONVEYOR_WORKER_HEARTBEAT_SECONDS": "1",
        },
    )
    before = dead_letters()
    # When that task is submitted (each time it runs, its worker process dies and is restarted)
    status, body, _ = http(
        "POST", f"{system.base_url}/api/v1/tasks", {"task": "tests.crashing.tasks.exit_worker", "args": [3]}, token
    )
    assert status == 202, body
    task_id = body["id"]
    keep_workers_running(system, lambda: TaskRecord.objects.get(id=task_id).status == TaskStatus.FAILED, timeout=150)
    # Then it is FAILED after the limit, saying why, and its message is dead-lettered
    record = TaskRecord.objects.get(id=task_id)
    assert f"worker died {MAX_DEATHS} times" in record.failure_reason
    assert record.worker_deaths == MAX_DEATHS
    assert [e["exception_class_path"] for e in record.errors] == ["conveyor.errors.WorkerDied"] * MAX_DEATHS
    wait_for(lambda: dead_letters() == before + 1, 30, "the message in default.XQ")
    # And the workers still run other tasks
    keep_workers_running(system, lambda: all(w.proc.poll() is None for w in system.workers), timeout=30)
    status, body, _ = http("POST", f"{system.base_url}/api/v1/tasks", {"task": "demo.tasks.add", "args": [2, 2]}, token)
    assert status == 202, body
    wait_for(lambda: TaskRecord.objects.get(id=body["id"]).status == TaskStatus.SUCCESSFUL, 60, "the next task")
    assert TaskRecord.objects.get(id=body["id"]).return_value == 4


def test_a_task_stuck_past_its_hard_time_limit_fails_and_its_worker_is_replaced(start_system, token):
    purge_queues("default", "default.DQ", "default.XQ")
    # Given two worker services and a task that blocks in a C call far past its 1 s time limit
    system = start_system(
        workers=2,
        env={
            "DJANGO_SETTINGS_MODULE": "tests.crashing.settings",
            "CONVEYOR_HARD_TIME_LIMIT_GRACE_SECONDS": "2",
            "CONVEYOR_WORKER_LEASE_SECONDS": "5",
            "CONVEYOR_WORKER_HEARTBEAT_SECONDS": "1",
        },
    )
    before = dead_letters()

    def submit(task, *args):
        status, body, _ = http("POST", f"{system.base_url}/api/v1/tasks", {"task": task, "args": list(args)}, token)
        assert status == 202, body
        return body["id"]

    stuck = submit("tests.crashing.tasks.hang", 3600)
    others = [submit("demo.tasks.sleep", 4) for _ in range(6)]
    # When its worker notices it is stuck (and the orchestrator starts a new worker process)
    keep_workers_running(
        system,
        lambda: (
            TaskRecord.objects.filter(id__in=others, status=TaskStatus.SUCCESSFUL).count() == len(others)
            and TaskRecord.objects.get(id=stuck).status == TaskStatus.FAILED
        ),
        timeout=120,
    )
    # Then the stuck task is FAILED with a hard time limit error, and dead-lettered
    record = TaskRecord.objects.get(id=stuck)
    assert record.errors[-1]["exception_class_path"] == "conveyor.errors.HardTimeLimitExceeded"
    assert "hard time limit" in record.failure_reason
    wait_for(lambda: dead_letters() == before + 1, 30, "the message in default.XQ")
    # And the tasks that shared its process ran to the end elsewhere, not counted as worker deaths
    assert set(TaskRecord.objects.filter(id__in=others).values_list("worker_deaths", flat=True)) == {0}
