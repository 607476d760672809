"""A task that kills its worker on every delivery, on quorum queues: dead-lettered with its reason.

Not redelivered for ever.

The same test-only task as tests/e2e/test_worker_deaths.py (tests/crashing), its workers
started again as an orchestrator would. Conveyor's rule (CONVEYOR_MAX_WORKER_DEATHS) ends
it; the queue's delivery limit (CONVEYOR_QUORUM_DELIVERY_LIMIT) is only a backstop.
"""

import time

import pika
import pytest

from conveyor.core.models import TaskRecord, TaskStatus
from tests.e2e.test_worker_deaths import keep_workers_running
from tests.support.processes import http, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.e2e, pytest.mark.integration]

MAX_DEATHS = 3


def test_a_task_that_kills_its_worker_every_time_ends_dead_lettered_with_its_reason(
    whole_cluster, cluster_vhost, cluster_env, start_system, token
):
    cluster = whole_cluster
    # Given two workers on the cluster's quorum queues that know a task which exits its process
    system = start_system(
        workers=2,
        env={
            **cluster_env,
            "DJANGO_SETTINGS_MODULE": "tests.crashing.settings",
            "CONVEYOR_MAX_WORKER_DEATHS": str(MAX_DEATHS),
            "CONVEYOR_WORKER_LEASE_SECONDS": "5",
            "CONVEYOR_WORKER_HEARTBEAT_SECONDS": "1",
        },
    )
    assert cluster.queues(cluster_vhost)["default"]["type"] == "quorum"
    # When that task is submitted (each delivery kills its worker, which is started again)
    status, body, _ = http(
        "POST", f"{system.base_url}/api/v1/tasks", {"task": "tests.crashing.tasks.exit_worker", "args": [3]}, token
    )
    assert status == 202, body
    task_id = body["id"]
    keep_workers_running(system, lambda: TaskRecord.objects.get(id=task_id).status == TaskStatus.FAILED, timeout=150)
    # Then it is FAILED, saying why
    record = TaskRecord.objects.get(id=task_id)
    assert f"worker died {MAX_DEATHS} times" in record.failure_reason
    assert record.worker_deaths == MAX_DEATHS
    # And its message is in default.XQ (a quorum queue), dead-lettered, and no longer in default
    connection = pika.BlockingConnection([pika.URLParameters(u) for u in cluster.urls_for(cluster_vhost)])
    try:
        channel = connection.channel()
        deadline = time.monotonic() + 30
        while (got := channel.basic_get("default.XQ", auto_ack=True))[0] is None and time.monotonic() < deadline:
            time.sleep(0.2)
        method, properties, message = got
        assert method is not None, "nothing in default.XQ"
        assert task_id.encode() in message
        assert properties.headers["x-first-death-queue"] == "default"
        assert properties.headers["x-first-death-reason"] == "rejected"
    finally:
        connection.close()
    assert cluster.queues(cluster_vhost)["default.XQ"]["type"] == "quorum"
    wait_for(lambda: cluster.queues(cluster_vhost)["default"]["messages"] == 0, 30, "default to be empty")
    # And the workers still run other tasks
    keep_workers_running(system, lambda: all(w.proc.poll() is None for w in system.workers), timeout=30)
    status, body, _ = http("POST", f"{system.base_url}/api/v1/tasks", {"task": "demo.tasks.add", "args": [2, 2]}, token)
    assert status == 202, body
    wait_for(lambda: TaskRecord.objects.get(id=body["id"]).status == TaskStatus.SUCCESSFUL, 60, "the next task")
