"""A task that kills its worker process is not redelivered for ever, and the other workers go on."""

import pika
import pytest
from django.conf import settings

from conveyor.core.models import TaskRecord, TaskStatus
from tests.support.processes import http, wait_for
from tests.support.rabbitmq import purge_queues
from tests.support.worker_deaths import ENV, MAX_DEATHS, assert_workers_go_on, keep_workers_running, run_until_failed

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def dead_letters(queue="default"):
    connection = pika.BlockingConnection(pika.URLParameters(settings.BROKER_URL))
    try:
        return connection.channel().queue_declare(f"{queue}.XQ", passive=True).method.message_count
    finally:
        connection.close()


def test_a_task_that_kills_its_worker_ends_failed_after_the_limit_and_the_workers_go_on(start_system, token):
    purge_queues("default", "default.DQ", "default.XQ")
    # Given two worker services (each one Dramatiq process) that know a task which exits its process
    system = start_system(workers=2, env=ENV)
    before = dead_letters()
    # When that task is submitted (each time it runs, its worker process dies and is restarted)
    record = run_until_failed(system, token)
    # Then it is FAILED after the limit, saying why, and its message is dead-lettered
    assert [e["exception_class_path"] for e in record.errors] == ["conveyor.errors.WorkerDied"] * MAX_DEATHS
    wait_for(lambda: dead_letters() == before + 1, 30, "the message in default.XQ")
    # And the workers still run other tasks
    assert_workers_go_on(system, token)


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
