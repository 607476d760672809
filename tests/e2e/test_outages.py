"""Outages: the broker down (a private RabbitMQ node we stop) and the database down."""

import pytest

from conveyor.core.models import OutboxEntry, TaskRecord, TaskStatus
from tests.support.processes import System, http, wait_for
from tests.support.rabbitmq import PrivateNode

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


@pytest.fixture
def private_rabbit():
    node = PrivateNode().start()
    yield node
    node.destroy()


def test_tasks_submitted_while_the_broker_is_down_complete_once_it_is_back(start_system, token, private_rabbit):
    # Given the system running on a private RabbitMQ node
    system = start_system(workers=2, env={"BROKER_URL": private_rabbit.url})
    # When the broker stops and 30 tasks are submitted
    private_rabbit.stop()
    ids = []
    for i in range(30):
        status, body, _ = http(
            "POST", f"{system.base_url}/api/v1/tasks", {"task": "demo.tasks.add", "args": [i, i]}, token
        )
        # Then each is still accepted (it is in the database)
        assert status == 202, body
        ids.append(body["id"])
    assert TaskRecord.objects.filter(id__in=ids).count() == 30
    status, body, _ = http("GET", f"{system.base_url}/readyz")
    assert status == 503 and body["checks"]["broker"] != "ok"
    # And once the broker is back every task completes, and the outbox drains
    private_rabbit.start()
    wait_for(
        lambda: TaskRecord.objects.filter(id__in=ids, status=TaskStatus.SUCCESSFUL).count() == 30,
        120,
        "all tasks to complete after the broker came back",
    )
    assert OutboxEntry.objects.count() == 0
    assert sorted(TaskRecord.objects.filter(id__in=ids).values_list("return_value", flat=True)) == sorted(
        2 * i for i in range(30)
    )


def test_database_down_answers_503_never_202(system_env, token):
    # Given a web service whose database does not answer
    env = {**system_env, "DATABASE_URL": "postgres://postgres@127.0.0.1:1/nowhere"}
    system = System(env, workers=0, relay=False).start()
    try:
        # When a task is submitted
        status, body, headers = http(
            "POST", f"{system.base_url}/api/v1/tasks", {"task": "demo.tasks.add", "args": [1, 2]}, token
        )
        # Then 503 with a JSON reason and a Retry-After, never a 202
        assert status == 503, body
        assert body["error"]["code"] == "database_unavailable"
        assert headers.get("Retry-After")
        assert http("GET", f"{system.base_url}/readyz")[0] == 503
        assert http("GET", f"{system.base_url}/healthz")[0] == 200
    finally:
        system.stop()
