"""GET /api/v1/tasks/<id>?wait=N answers once the task has finished, or after N seconds."""

import json
import threading
import time

import pytest
from django.db import connection

from conveyor.core.models import TaskRecord, TaskStatus

pytestmark = pytest.mark.django_db(transaction=True)


def submit(api):
    response = api.post("/api/v1/tasks", data=json.dumps({"task": "demo.tasks.noop"}), content_type="application/json")
    assert response.status_code == 202
    return response.json()["id"]


def test_wait_answers_as_soon_as_the_task_has_finished(api):
    # Given a READY task that another process finishes in half a second
    task_id = submit(api)

    def finish():
        time.sleep(0.5)
        TaskRecord.objects.filter(id=task_id).update(status=TaskStatus.SUCCESSFUL, return_value=7)
        connection.close()

    threading.Thread(target=finish).start()
    # When a client asks for it, waiting up to 30 s
    started = time.monotonic()
    body = api.get(f"/api/v1/tasks/{task_id}?wait=30").json()
    # Then the answer has the result, long before the 30 s were up
    assert (body["status"], body["return_value"]) == ("SUCCESSFUL", 7)
    assert time.monotonic() - started < 20


def test_wait_answers_the_current_state_when_time_is_up(api):
    task_id = submit(api)
    assert api.get(f"/api/v1/tasks/{task_id}?wait=0.2").json()["status"] == "READY"


@pytest.mark.parametrize("wait", ["31", "-1", "soon"])
def test_a_wait_outside_0_to_30_seconds_is_a_400(api, wait):
    task_id = submit(api)
    assert api.get(f"/api/v1/tasks/{task_id}?wait={wait}").status_code == 400
