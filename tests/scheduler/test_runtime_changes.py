"""A running scheduler picks up schedules created and disabled through the API, without a restart."""

import json
import time

import pytest
from django.utils import timezone

from conveyor.core.models import TaskRecord
from tests.scheduler.support import Scheduler
from tests.support.processes import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_schedule_created_through_the_api_fires_and_stops_when_disabled(client, make_token):
    _, secret = make_token(("admin",))
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    # Given a running scheduler
    scheduler = Scheduler("scheduler").start()
    try:
        wait_for(scheduler.is_leader, 30, "the scheduler to lead")
        pid = scheduler.proc.pid
        # When a schedule is created through the API
        response = client.post(
            "/api/v1/schedules",
            data=json.dumps({"name": "api-made", "task": "demo.tasks.add", "args": [4, 6], "interval_seconds": 1}),
            content_type="application/json",
        )
        assert response.status_code == 201, response.json()
        # Then the running scheduler fires it
        fired = lambda: TaskRecord.objects.filter(schedule_name="api-made")  # noqa: E731
        wait_for(lambda: fired().count() >= 2, 30, "the new schedule to fire")
        # When it is disabled through the API
        assert client.post("/api/v1/schedules/api-made/disable").status_code == 200
        disabled_at = timezone.now()
        # Then, after several more passes of the same process, nothing fires for a later time
        passes = scheduler.heartbeat()["passes"]
        wait_for(lambda: scheduler.heartbeat()["passes"] >= passes + 4, 30, "more scheduler passes")
        time.sleep(1.5)  # at least one more would-be fire time (1 s interval) has passed
        wait_for(lambda: scheduler.heartbeat()["passes"] >= passes + 6, 30, "more scheduler passes")
        assert not fired().filter(fire_time__gt=disabled_at).exists()
        assert scheduler.proc.pid == pid and scheduler.proc.poll() is None  # never restarted
    finally:
        scheduler.stop()
