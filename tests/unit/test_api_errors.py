"""Every error answer carries the code and status of the error that caused it, as JSON."""

import base64
import json

import pytest

from conveyor.errors import ClientError, ConveyorError, TaskNotFound
from conveyor.scheduling.models import Schedule
from services.web.errors import error_response

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_a_body_with_a_non_json_number_is_malformed_json(api, constant):
    # Given a body that Python's json accepts but JSON does not
    body = '{"task": "demo.tasks.add", "args": [' + constant + ", 1]}"
    # When it is submitted
    response = api.post("/api/v1/tasks", data=body, content_type="application/json")
    # Then 400 malformed_json naming the constant, not a database error
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_json"
    assert constant.lstrip("-") in response.json()["error"]["message"]


def test_a_number_too_large_for_a_double_is_malformed_json(api):
    # Given valid JSON text whose number no double can hold
    body = '{"task": "demo.tasks.sleep", "args": [1e400]}'
    # When it is submitted; Then 400 malformed_json, not a database error
    response = api.post("/api/v1/tasks", data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_json"


def test_an_integral_number_written_with_a_fraction_is_an_integer(api):
    # Given priority 3.0: the integer 3 to JSON and to JSON Schema
    body = '{"task": "demo.tasks.flaky", "args": [0.0], "priority": 3.0}'
    # When it is submitted; Then it is accepted as 3
    response = api.post("/api/v1/tasks", data=body, content_type="application/json")
    assert response.status_code == 202, response.content
    assert (response.json()["priority"], response.json()["args"]) == (3, [0])


@pytest.mark.parametrize("path", ["/api/v1/tasks", "/api/v1/workflows"])
def test_a_body_nested_too_deeply_to_parse_is_malformed_json(api, path):
    # Given valid JSON nested 100,000 levels deep (100 KB: under the body limit)
    body = '{"task": "demo.tasks.add", "args": [' + "[" * 100_000 + "]" * 100_000 + "]}"
    # When it is submitted; Then 400 malformed_json, not a RecursionError (500)
    response = api.post(path, data=body, content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    assert response.json()["error"]["code"] == "malformed_json"


def test_a_huge_number_written_with_a_fraction_stays_a_float(api):
    # Given 1e308: integral, but beyond the integers a double holds exactly
    body = '{"task": "demo.tasks.add", "args": [1e308, 1.0]}'
    # When it is submitted; Then it reaches the task as the float it was written as
    response = api.post("/api/v1/tasks", data=body, content_type="application/json")
    assert response.status_code == 202, response.content
    assert isinstance(response.json()["args"][0], float)


@pytest.mark.parametrize(
    "path, code",
    [
        ("/api/v1/tasks/00000000-0000-0000-0000-000000000000", "task_not_found"),
        ("/api/v1/tasks/not-a-uuid", "task_not_found"),
        ("/api/v1/schedules/no-such-schedule", "schedule_not_found"),
        ("/api/v1/no-such-endpoint", "path_not_found"),
    ],
)
def test_every_404_has_its_own_code(api, path, code):
    # When something that is not there is asked for
    response = api.get(path)
    # Then 404 with a JSON body naming what was not found
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error"]["code"] == code


def test_a_cursor_that_is_not_a_task_id_is_400(api):
    # Given a cursor that is not one we made (an old base64 cursor, say)
    cursor = base64.urlsafe_b64encode(b"2026-01-01T00:00:00+00:00|not-a-uuid").decode()
    # When it is used; Then 400, never a 500
    response = api.get(f"/api/v1/tasks?cursor={cursor}")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"


def test_a_cursor_naming_no_visible_task_is_404(api):
    # Given a well-formed cursor whose task does not exist (purged meanwhile, or never was)
    # When it is used; Then 404 cursor_not_found, telling the client to start again
    response = api.get("/api/v1/tasks?cursor=00000000-0000-0000-0000-000000000000")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "cursor_not_found"


def test_an_unknown_query_parameter_is_refused_not_ignored(api):
    # Given a typo in a filter's name
    # When the list is asked for with it
    response = api.get("/api/v1/tasks?stauts=FAILED")
    # Then 400 naming it and the parameters the operation takes, not the unfiltered list
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert "'stauts'" in error["message"]
    assert "status" in error["details"]["allowed"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/tasks?queue=default%00",
        "/api/v1/tasks?task=demo.tasks.add%00",
        "/api/v1/schedules/nightly%00",
        "/api/v1/schedules/nightly%00/fires",
    ],
)
def test_a_nul_in_a_query_or_path_parameter_is_400(api, path):
    # Given a parameter holding U+0000, which PostgreSQL's text cannot hold
    # When it is sent
    response = api.get(path)
    # Then 400 naming the parameter, not a database error (500)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "invalid_request"
    assert "U+0000" in response.json()["error"]["message"]


def test_a_fire_outcome_filter_outside_the_outcomes_is_400(api):
    # Given a schedule
    Schedule.objects.create(name="nightly", task_path="demo.tasks.noop", interval_seconds=60)
    # When its fires are filtered by an outcome that does not exist
    response = api.get("/api/v1/schedules/nightly/fires?outcome=exploded")
    # Then 400 (the schema's enum), not an empty list that hides the typo
    assert response.status_code == 400, response.content


@pytest.mark.parametrize("key", ["", "k" * 201])
def test_an_idempotency_key_of_the_wrong_length_is_400(api, key):
    # When a task is submitted with an empty or too long Idempotency-Key
    response = api.post(
        "/api/v1/tasks",
        data=json.dumps({"task": "demo.tasks.noop"}),
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY=key,
    )
    # Then 400, as the schema states (1..200 characters)
    assert response.status_code == 400


def test_an_unexpected_fault_is_a_json_500(api, monkeypatch):
    # Given a view that fails in a way nobody planned
    from conveyor import catalog

    monkeypatch.setattr(catalog, "entries", lambda: 1 / 0)
    # When it is called; Then a JSON 500, not an HTML page or a traceback
    response = api.get("/api/v1/catalog")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "error"


def test_the_response_takes_status_code_and_headers_from_the_error():
    # Given errors of several kinds
    for error in (TaskNotFound(), ClientError("nope"), ConveyorError()):
        # When each becomes a response
        response = error_response(error)
        # Then status and code are the error's own
        assert response.status_code == error.status
        assert json.loads(response.content)["error"]["code"] == error.code


def test_an_error_without_a_message_says_its_docstring():
    assert str(TaskNotFound()) == "No such task (or not one this token may see)."


def test_a_run_after_past_the_last_representable_time_means_never(api):
    # Given a time that exists with its offset but not in UTC (year 10000)
    body = {"task": "demo.tasks.add", "args": [1, 2], "run_after": "9999-12-31T23:59:59-14:00"}
    # When it is submitted; Then it is accepted (the schema allows it) and waits for the last instant
    response = api.post("/api/v1/tasks", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 202
    assert response.json()["run_after"].startswith("9999-12-31T23:59:59.999")


@pytest.mark.parametrize("run_after", [0, "1700000000", "2026-01-01", "2026-01-01T08:00:00", "2026-13-01T00:00:00Z"])
def test_a_run_after_that_is_not_an_rfc3339_date_time_is_400(api, run_after):
    # Given a Unix time, a date alone, a time without offset, or no such date
    body = {"task": "demo.tasks.add", "args": [1, 2], "run_after": run_after}
    # When it is submitted; Then 400 naming run_after (pydantic alone would take some of them)
    response = api.post("/api/v1/tasks", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["field"] == "run_after"


def test_a_multipart_body_without_a_boundary_is_400(api):
    # Given an upload whose Content-Type names no boundary
    response = api.post("/api/v1/demo/profile-pictures", data=b"--x\r\n", content_type="multipart/form-data")
    # Then 400 with a JSON reason, not a 500 with a traceback
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_upload"
