"""A task that kills its worker on every delivery (tests/crashing), as the e2e test on one
RabbitMQ node (tests/e2e/test_worker_deaths.py) and the cluster test on quorum queues
(tests/cluster/test_poison.py) both run it: workers started again as an orchestrator
would, until Conveyor's death limit ends the task; then the workers go on."""

import time

from conveyor.core.models import TaskRecord, TaskStatus
from tests.support.processes import http, wait_for

MAX_DEATHS = 3
# What the worker processes need: the test-only app, a low death limit, and a lease short
# enough that a dead worker's task is taken over within seconds.
ENV = {
    "DJANGO_SETTINGS_MODULE": "tests.crashing.settings",
    "CONVEYOR_MAX_WORKER_DEATHS": str(MAX_DEATHS),
    "CONVEYOR_WORKER_LEASE_SECONDS": "5",
    "CONVEYOR_WORKER_HEARTBEAT_SECONDS": "1",
}


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


def run_until_failed(system, token):
    """Submit the crashing task, keep the workers running until it is FAILED; it failed at the limit."""
    status, body, _ = http(
        "POST", f"{system.base_url}/api/v1/tasks", {"task": "tests.crashing.tasks.exit_worker", "args": [3]}, token
    )
    assert status == 202, body
    task_id = body["id"]
    keep_workers_running(system, lambda: TaskRecord.objects.get(id=task_id).status == TaskStatus.FAILED, timeout=150)
    record = TaskRecord.objects.get(id=task_id)
    assert f"worker died {MAX_DEATHS} times" in record.failure_reason
    assert record.worker_deaths == MAX_DEATHS
    return record


def assert_workers_go_on(system, token):
    """Every worker is running (restarted if need be) and the next task runs on them."""
    keep_workers_running(system, lambda: all(w.proc.poll() is None for w in system.workers), timeout=30)
    status, body, _ = http("POST", f"{system.base_url}/api/v1/tasks", {"task": "demo.tasks.add", "args": [2, 2]}, token)
    assert status == 202, body
    wait_for(lambda: TaskRecord.objects.get(id=body["id"]).status == TaskStatus.SUCCESSFUL, 60, "the next task")
    assert TaskRecord.objects.get(id=body["id"]).return_value == 4
