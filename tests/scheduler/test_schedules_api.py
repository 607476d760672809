"""/api/v1/schedules: reading needs `read`, changing needs `admin`; bad input is a 4xx."""

import json

import pytest

from conveyor.core.models import TaskRecord
from conveyor.scheduling.models import Schedule, ScheduleOrigin

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

URL = "/api/v1/schedules"


@pytest.fixture
def admin(client, make_token):
    _, secret = make_token(("admin",))
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    return client


def post(client, url, body=None):
    return client.post(url, data=json.dumps(body or {}), content_type="application/json")


def patch(client, url, body):
    return client.patch(url, data=json.dumps(body), content_type="application/json")


DIGEST = {
    "name": "team-digest",
    "task": "demo.tasks.send_email",
    "kwargs": {"to": "team@example.com", "subject": "Daily", "body": "Hello"},
    "cron": "0 8 * * 1-5",
    "timezone": "Europe/Paris",
}


def test_admin_creates_a_cron_schedule_and_reads_it_back(admin):
    response = post(admin, URL, DIGEST)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["name"], body["cron"], body["timezone"], body["origin"]) == (
        "team-digest",
        "0 8 * * 1-5",
        "Europe/Paris",
        "runtime",
    )
    assert body["enabled"] and body["coalesce"] and body["next_fire_time"]
    assert admin.get(f"{URL}/team-digest").json()["next_fire_time"] == body["next_fire_time"]
    assert [s["name"] for s in admin.get(URL).json()] == ["team-digest"]


def test_a_read_token_lists_but_cannot_change(api, make_token, client):
    _, secret = make_token(("read",))
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    assert client.get(URL).status_code == 200
    response = post(client, URL, DIGEST)
    assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"


def test_a_write_token_cannot_create_schedules(api):
    # scheduled tasks belong to no token: only admins may start them
    assert post(api, URL, DIGEST).status_code == 403


@pytest.mark.parametrize(
    "change, code",
    [
        ({"cron": "0 8 * *"}, "invalid_schedule"),
        ({"timezone": "Mars/Olympus"}, "invalid_schedule"),
        ({"cron": None}, "invalid_schedule"),  # neither cron nor interval
        ({"interval_seconds": 60}, "invalid_schedule"),  # both
        ({"task": "demo.tasks.nope"}, "unknown_task"),
        ({"kwargs": {"to": 1}}, "invalid_arguments"),
        ({"queue": "nowhere"}, "invalid_arguments"),
        ({"name": "has spaces"}, "invalid_request"),
        ({"next_fire_time": "2030-01-01T00:00:00Z"}, "invalid_request"),  # not settable by a client
    ],
)
def test_bad_schedules_are_a_400_with_the_error_shape(admin, change, code):
    response = post(admin, URL, {**DIGEST, **change})
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == code
    assert not Schedule.objects.exists()


def test_a_duplicate_name_is_a_409(admin):
    post(admin, URL, DIGEST)
    response = post(admin, URL, DIGEST)
    assert response.status_code == 409 and response.json()["error"]["code"] == "schedule_exists"


def test_update_switches_cron_to_interval_and_restarts_the_timing(admin):
    post(admin, URL, DIGEST)
    response = patch(admin, f"{URL}/team-digest", {"cron": None, "interval_seconds": 30, "misfire_grace_seconds": 5})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["cron"], body["interval_seconds"], body["misfire_grace_seconds"]) == (None, 30, 5)
    assert body["start_at"] == body["next_fire_time"]  # anchored at the next whole second


def test_disable_clears_the_next_fire_time_and_enable_restores_it(admin):
    post(admin, URL, DIGEST)
    assert post(admin, f"{URL}/team-digest/disable").json()["next_fire_time"] is None
    body = post(admin, f"{URL}/team-digest/enable").json()
    assert body["enabled"] and body["next_fire_time"]


def test_run_now_answers_the_task_with_its_schedule_and_fire_time(admin):
    post(admin, URL, DIGEST)
    response = post(admin, f"{URL}/team-digest/run")
    assert response.status_code == 202
    task = response.json()
    assert (task["task"], task["schedule"], task["source"]) == ("demo.tasks.send_email", "team-digest", "scheduler")
    assert task["fire_time"]
    # and the task API shows the same
    fetched = admin.get(f"/api/v1/tasks/{task['id']}").json()
    assert (fetched["schedule"], fetched["fire_time"]) == ("team-digest", task["fire_time"])
    fires = admin.get(f"{URL}/team-digest/fires").json()
    assert [(f["outcome"], f["manual"], f["task_id"]) for f in fires] == [("enqueued", True, task["id"])]


def test_delete_removes_a_runtime_schedule_but_keeps_its_tasks(admin):
    post(admin, URL, DIGEST)
    post(admin, f"{URL}/team-digest/run")
    assert admin.delete(f"{URL}/team-digest").status_code == 204
    assert admin.get(f"{URL}/team-digest").status_code == 404
    assert TaskRecord.objects.filter(schedule_name="team-digest").count() == 1


def test_a_schedule_declared_in_code_cannot_be_deleted(admin):
    Schedule.objects.create(
        name="from-code", task_path="demo.tasks.noop", interval_seconds=60, origin=ScheduleOrigin.CODE
    )
    response = admin.delete(f"{URL}/from-code")
    assert response.status_code == 409 and response.json()["error"]["code"] == "declared_in_code"


def test_unknown_schedule_is_a_404(admin):
    assert admin.get(f"{URL}/nope").status_code == 404
    assert post(admin, f"{URL}/nope/run").status_code == 404
