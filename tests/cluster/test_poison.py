"""A task that kills its worker on every delivery, on quorum queues: dead-lettered with its reason.

Not redelivered for ever.

The same test-only task as tests/e2e/test_worker_deaths.py (tests/crashing), its workers
started again as an orchestrator would. Conveyor's rule (CONVEYOR_MAX_WORKER_DEATHS) ends
it; the queue's delivery limit (CONVEYOR_QUORUM_DELIVERY_LIMIT) is only a backstop.
"""

import time

import pika
import pytest

from tests.support.processes import wait_for
from tests.support.worker_deaths import ENV, assert_workers_go_on, run_until_failed

pytestmark = [pytest.mark.cluster, pytest.mark.e2e, pytest.mark.integration]


def test_a_task_that_kills_its_worker_every_time_ends_dead_lettered_with_its_reason(
    whole_cluster, cluster_vhost, cluster_env, start_system, token
):
    cluster = whole_cluster
    # Given two workers on the cluster's quorum queues that know a task which exits its process
    system = start_system(workers=2, env={**cluster_env, **ENV})
    assert cluster.queues(cluster_vhost)["default"]["type"] == "quorum"
    # When that task is submitted (each delivery kills its worker, which is started again)
    # Then it is FAILED after the limit, saying why
    task_id = str(run_until_failed(system, token).id)
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
    assert_workers_go_on(system, token)
