"""Tasks per second through the three-node cluster against one node, in one run (printed, not asserted).

The same workload each time: 2,000 demo.tasks.noop submitted over the batch endpoint (two
requests of 1,000), two worker processes, timed from the first request until the last
task is SUCCESSFUL in the records. The single node is the machine's shared RabbitMQ,
each configuration on a vhost of its own.
"""

import secrets
import time

import pytest
from django.conf import settings

from conveyor.core.models import TaskRecord, TaskStatus
from tests.support import rabbitmq
from tests.support.processes import http, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.e2e, pytest.mark.integration]

TASKS, BATCH = 2000, 1000


@pytest.fixture
def shared_vhosts():
    made = []

    def make():
        vhost = f"conveyor-single-{secrets.token_hex(3)}"
        rabbitmq.create_vhost(vhost)
        made.append(vhost)
        host = settings.BROKER_URL.split("@", 1)[1].split("/", 1)[0]
        return f"amqp://guest:guest@{host}/{vhost}"

    yield make
    for vhost in made:
        rabbitmq.delete_vhost(vhost)


def submit(system, token, count):
    ids = []
    for start in range(0, count, BATCH):
        tasks = [{"task": "demo.tasks.noop"}] * min(BATCH, count - start)
        status, body, _ = http("POST", f"{system.base_url}/api/v1/tasks/batch", {"tasks": tasks}, token, timeout=60)
        assert status == 202, body
        ids += [task["id"] for task in body["tasks"]]
    return ids


def tasks_per_second(start_system, token, env):
    system = start_system(workers=2, env=env)
    try:
        warmup = submit(system, token, 50)
        done = TaskRecord.objects.filter(id__in=warmup, status=TaskStatus.SUCCESSFUL)
        wait_for(lambda: done.count() == len(warmup), 60, "the warmup tasks")
        began = time.monotonic()
        ids = submit(system, token, TASKS)
        wait_for(
            lambda: TaskRecord.objects.filter(id__in=ids, status=TaskStatus.SUCCESSFUL).count() == TASKS,
            240,
            f"{TASKS} tasks",
        )
        return TASKS / (time.monotonic() - began)
    finally:
        system.stop()  # the next configuration gets the machine to itself


def test_tasks_per_second_through_the_cluster_and_one_node(
    whole_cluster, cluster_env, start_system, token, shared_vhosts
):
    # Given the same workload (2,000 noop tasks, two workers) for each broker configuration
    figures = {
        "one node, classic queues": tasks_per_second(
            start_system, token, {"BROKER_URL": shared_vhosts(), "CONVEYOR_QUEUE_TYPE": "classic"}
        ),
        "one node, quorum queues": tasks_per_second(
            start_system, token, {"BROKER_URL": shared_vhosts(), "CONVEYOR_QUEUE_TYPE": "quorum"}
        ),
        "three-node cluster, quorum queues": tasks_per_second(start_system, token, cluster_env),
    }
    # Then every task ran (asserted above); the figures are for the report
    print(f"\nTHROUGHPUT {TASKS} demo.tasks.noop over /api/v1/tasks/batch, two workers:")
    for name, rate in figures.items():
        print(f"  {name:35s} {rate:7.0f} tasks/s")
