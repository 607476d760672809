"""Every error answer carries the code and status of the error that caused it, as JSON."""

import base64
import json

import pytest

from conveyor.errors import ClientError, ConveyorError, TaskNotFound
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


def test_a_cursor_with_no_uuid_inside_is_400(api):
    # Given a cursor that is valid base64 but not one we made
    cursor = base64.urlsafe_b64encode(b"2026-01-01T00:00:00+00:00|not-a-uuid").decode()
    # When it is used; Then 400, never a 500
    response = api.get(f"/api/v1/tasks?cursor={cursor}")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"


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


def test_a_run_after_past_the_last_representable_time_is_400(api):
    # Given a time that exists with its offset but not in UTC (year 10000)
    body = {"task": "demo.tasks.add", "args": [1, 2], "run_after": "9999-12-31T23:59:59-14:00"}
    # When it is submitted; Then 400 naming run_after, never a 500
    response = api.post("/api/v1/tasks", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["field"] == "run_after"


def test_a_multipart_body_without_a_boundary_is_400(api):
    # Given an upload whose Content-Type names no boundary
    response = api.post("/api/v1/demo/profile-pictures", data=b"--x\r\n", content_type="multipart/form-data")
    # Then 400 with a JSON reason, not a 500 with a traceback
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_upload"
