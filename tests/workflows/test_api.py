"""/api/v1/workflows: submit, read, cancel, retry; the same auth and ownership rules as tasks."""

import json

import pytest

from conveyor.core.models import TaskRecord
from conveyor.workflows.models import Workflow

pytestmark = pytest.mark.django_db

URL = "/api/v1/workflows"
CHAIN = {"chain": [{"task": "demo.tasks.add", "args": [1, 2]}, {"task": "demo.tasks.add", "args": [3]}]}


def post(client, url, body=None):
    return client.post(url, data=json.dumps(body if body is not None else {}), content_type="application/json")


def test_a_chain_is_accepted_with_its_location_and_first_step_enqueued(api):
    # When a chain is submitted
    response = post(api, URL, CHAIN)
    # Then 202 with its id, a Location, and its steps: the first has a READY task, the second waits
    assert response.status_code == 202, response.content
    body = response.json()
    assert response["Location"] == f"{URL}/{body['id']}"
    assert body["status"] == "READY"
    assert [(s["position"], s["task"], s["status"]) for s in body["steps"]] == [
        (0, "demo.tasks.add", "READY"),
        (1, "demo.tasks.add", "WAITING"),
    ]
    assert TaskRecord.objects.get(id=body["steps"][0]["task_id"]).owner == api.token
    # And it reads back the same, and its first task names it
    assert api.get(response["Location"]).json()["steps"] == body["steps"]
    assert api.get(f"/api/v1/tasks/{body['steps'][0]['task_id']}").json()["workflow"] == body["id"]


def test_a_chord_over_http_has_its_members_and_callback(api):
    body = {
        "chord": {
            "group": [{"task": "demo.tasks.add", "args": [i, i]} for i in range(3)],
            "then": {"task": "demo.tasks.total"},
        }
    }
    response = post(api, URL, body)
    assert response.status_code == 202, response.content
    assert [s["path"] for s in response.json()["steps"]][-1] == "workflow.chord.then"


@pytest.mark.parametrize(
    "body, step, code",
    [
        (
            {"chain": [{"task": "demo.tasks.add", "args": [1, 2]}, {"task": "demo.tasks.nope"}]},
            "workflow.chain[1]",
            "unknown_task",
        ),
        (
            {"chain": [{"task": "demo.tasks.add", "args": [1, 2]}, {"task": "demo.tasks.add", "args": [1, 2]}]},
            "workflow.chain[1]",
            "invalid_arguments",
        ),
        ({"group": [{"task": "demo.tasks.add", "args": [1, "x"]}]}, "workflow.group[0]", "invalid_arguments"),
        (
            {"chain": [{"task": "demo.tasks.add", "args": [1, 2], "queue": "nowhere"}]},
            "workflow.chain[0]",
            "unknown_queue",
        ),
    ],
)
def test_a_bad_step_is_a_400_naming_it_and_nothing_is_created(api, body, step, code):
    response = post(api, URL, body)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert (error["code"], error["details"]["step"], error["details"]["code"]) == ("invalid_workflow", step, code)
    assert not Workflow.objects.exists() and not TaskRecord.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        {"group": []},
        {"chain": []},
        {},
        {"chain": [{"task": "demo.tasks.noop"}], "group": [{"task": "demo.tasks.noop"}]},
    ],
)
def test_an_empty_or_shapeless_workflow_is_a_400(api, body):
    response = post(api, URL, body)
    assert response.status_code == 400, response.content
    assert not Workflow.objects.exists()


def test_too_many_steps_is_a_400(api, settings):
    settings.CONVEYOR_WORKFLOW_MAX_STEPS = 3
    response = post(api, URL, {"group": [{"task": "demo.tasks.noop"}] * 4})
    assert response.status_code == 400
    assert "more than 3 steps" in response.json()["error"]["message"]


def test_a_step_the_token_may_not_run_is_a_403_and_nothing_is_created(api):
    # Given a write token; When a workflow has a step only admins may run
    body = {"chain": [{"task": "demo.tasks.noop"}, {"task": "conveyor.core.tasks.purge_finished_tasks", "args": []}]}
    response = post(api, URL, body)
    # Then 403 naming the step, and nothing was stored
    assert response.status_code == 403
    assert response.json()["error"]["details"]["step"] == "workflow.chain[1]"
    assert not Workflow.objects.exists()


def test_a_read_token_cannot_submit(client, make_token):
    _, secret = make_token(("read",))
    response = client.post(
        URL, data=json.dumps(CHAIN), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {secret}"
    )
    assert response.status_code == 403


def test_another_token_does_not_see_the_workflow_but_an_admin_does(api, client, make_token):
    # Given a workflow of one token
    workflow_id = post(api, URL, CHAIN).json()["id"]
    _, other = make_token(("read", "write"), name="other")
    _, admin = make_token(("admin",), name="admin")
    # When another token asks for it, or tries to cancel it; Then 404
    assert client.get(f"{URL}/{workflow_id}", HTTP_AUTHORIZATION=f"Bearer {other}").status_code == 404
    assert client.post(f"{URL}/{workflow_id}/cancel", HTTP_AUTHORIZATION=f"Bearer {other}").status_code == 404
    # And an admin sees it
    assert client.get(f"{URL}/{workflow_id}", HTTP_AUTHORIZATION=f"Bearer {admin}").status_code == 200


def test_cancel_then_retry_over_http(api):
    # Given a chain not yet started
    workflow_id = post(api, URL, CHAIN).json()["id"]
    # When it is cancelled; Then every step is CANCELLED
    response = post(api, f"{URL}/{workflow_id}/cancel")
    assert response.status_code == 200
    assert [s["status"] for s in response.json()["steps"]] == ["CANCELLED", "CANCELLED"]
    # And cancelling again is a 409
    assert post(api, f"{URL}/{workflow_id}/cancel").status_code == 409
    # When it is retried; Then it runs again from its first step (the same task, READY again)
    response = post(api, f"{URL}/{workflow_id}/retry")
    assert response.status_code == 202
    assert [s["status"] for s in response.json()["steps"]] == ["READY", "WAITING"]
    # And a running workflow cannot be retried
    assert post(api, f"{URL}/{workflow_id}/retry").status_code == 409


def test_an_unknown_workflow_is_a_404(api):
    assert api.get(f"{URL}/00000000-0000-0000-0000-000000000000").json()["error"]["code"] == "workflow_not_found"
    assert api.get(f"{URL}/not-a-uuid").status_code == 404


def test_an_admin_creates_a_schedule_that_runs_a_workflow(client, make_token):
    _, admin = make_token(("admin",), name="admin")
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {admin}"
    body = {"name": "wf-every-hour", "workflow": CHAIN, "interval_seconds": 3600}
    response = post(client, "/api/v1/schedules", body)
    assert response.status_code == 201, response.content
    assert (response.json()["task"], response.json()["workflow"]) == (None, CHAIN)
    run = post(client, "/api/v1/schedules/wf-every-hour/run")
    assert run.status_code == 202, run.content
    assert run["Location"].startswith("/api/v1/workflows/")
    fires = client.get("/api/v1/schedules/wf-every-hour/fires").json()
    assert fires[0]["workflow_id"] == run.json()["id"]


def test_a_schedule_with_a_bad_workflow_is_a_400(client, make_token):
    _, admin = make_token(("admin",), name="admin")
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {admin}"
    body = {"name": "bad", "workflow": {"group": []}, "interval_seconds": 3600}
    response = post(client, "/api/v1/schedules", body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_workflow"


def test_staff_read_and_cancel_a_workflow_in_the_admin(api, client):
    from django.contrib.auth.models import User

    # Given a running workflow and a superuser
    workflow_id = post(api, URL, CHAIN).json()["id"]
    User.objects.create_superuser("boss", "boss@example.com", "pw-123456")
    client.defaults.pop("HTTP_AUTHORIZATION", None)
    client.login(username="boss", password="pw-123456")
    # When the admin shows it; Then its steps are listed
    page = client.get(f"/admin/conveyor/workflow/{workflow_id}/change/")
    assert page.status_code == 200 and b"workflow.chain[1]" in page.content
    # When it is cancelled from the list; Then it is CANCELLED, through the same guarded change
    client.post("/admin/conveyor/workflow/", {"action": "cancel", "_selected_action": [workflow_id]}, follow=True)
    assert Workflow.objects.get(id=workflow_id).status == "CANCELLED"


def nested(levels):
    node = {"task": "demo.tasks.noop"}
    for _ in range(levels):
        node = {"chain": [node]}
    return node


def test_a_deeply_nested_workflow_is_read_in_linear_time(api):
    # Given a chain nested 60 levels deep (validating it level by level twice, as a plain
    # django-ninja Schema would, is 2^60 steps: this test would never end)
    # When it is submitted; Then it is accepted
    response = post(api, URL, nested(60))
    assert response.status_code == 202, response.content[:300]


def test_a_workflow_nested_deeper_than_64_levels_is_a_400(api):
    response = post(api, URL, nested(100))
    assert response.status_code == 400
    assert "nested more than 64 levels" in response.json()["error"]["message"]


def test_waiting_for_a_workflow_answers_its_current_state_when_time_is_up(api):
    # Given a workflow no worker runs here
    workflow_id = post(api, URL, CHAIN).json()["id"]
    # When a client waits a moment for it; Then it gets its state, still READY
    assert api.get(f"{URL}/{workflow_id}?wait=0.2").json()["status"] == "READY"
    assert api.get(f"{URL}/{workflow_id}?wait=31").status_code == 400
