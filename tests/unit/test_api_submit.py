"""Submitting tasks over HTTP: what is accepted, and every way bad input is refused."""

import json

import pytest

from conveyor.core.models import OutboxEntry, TaskRecord

pytestmark = pytest.mark.django_db


def post(client, body, path="/api/v1/tasks", **headers):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(path, data=data, content_type="application/json", **headers)


def test_a_body_that_is_not_an_object_is_refused_naming_the_body(api):
    # Given a JSON list where an object is expected; When it is submitted
    response = post(api, [{"task": "demo.tasks.noop"}])
    # Then 400, and the message names the body rather than an empty field
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["message"].startswith("body: ")


def test_submit_answers_202_with_location_and_stores_row_and_outbox_entry(api):
    # Given a write token; When add(4, 6) is submitted
    response = post(api, {"task": "demo.tasks.add", "args": [4, 6]})
    # Then 202, a Location for the task, and the task is durably stored with its outbox entry
    assert response.status_code == 202
    body = response.json()
    assert response["Location"] == f"/api/v1/tasks/{body['id']}"
    record = TaskRecord.objects.get(id=body["id"])
    assert (record.task_path, record.args, record.status, record.source) == ("demo.tasks.add", [4, 6], "READY", "api")
    assert record.owner == api.token
    assert OutboxEntry.objects.filter(task=record).count() == 1


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({"task": "demo.tasks.nope"}, 400, "unknown_task"),
        ({"task": "demo.tasks.add", "args": [4]}, 400, "invalid_arguments"),
        ({"task": "demo.tasks.add", "args": [4, 6, 8]}, 400, "invalid_arguments"),
        ({"task": "demo.tasks.add", "args": ["4", 6]}, 400, "invalid_arguments"),
        ({"task": "demo.tasks.add", "kwargs": {"x": 1, "z": 2}}, 400, "invalid_arguments"),
        ({"task": "demo.tasks.add", "args": [1, 2], "status": "SUCCESSFUL"}, 400, "invalid_request"),
        ({"task": "demo.tasks.add", "args": [1, 2], "owner": 1}, 400, "invalid_request"),
        ({"task": "demo.tasks.add", "args": [1, 2], "priority": 500}, 400, "invalid_request"),
        ({"task": "demo.tasks.add", "args": [1, 2], "queue": "nope"}, 400, "invalid_arguments"),
        ({"task": "demo.tasks.add", "args": [1, 2], "run_after": "2030-01-01T08:00:00"}, 400, "invalid_request"),
        ({"args": [1, 2]}, 400, "invalid_request"),
        ("{not json", 400, "malformed_json"),
    ],
)
def test_bad_submission_is_a_4xx_with_a_json_reason_and_stores_nothing(api, body, status, code):
    # Given a bad body; When it is submitted
    response = post(api, body)
    # Then a 4xx that says what was wrong, and no half-created task
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert TaskRecord.objects.count() == 0
    assert OutboxEntry.objects.count() == 0


def test_forbidden_field_is_named_in_the_error(api):
    response = post(api, {"task": "demo.tasks.add", "args": [1, 2], "status": "SUCCESSFUL"})
    assert "status" in response.json()["error"]["message"]


def test_body_over_the_limit_is_413(api, settings):
    # Given a body larger than CONVEYOR_MAX_BODY_BYTES
    big = json.dumps({"task": "demo.tasks.add", "args": ["x" * (settings.CONVEYOR_MAX_BODY_BYTES + 10), 1]})
    # When it is submitted
    response = post(api, big)
    # Then 413 with a JSON reason, and nothing is stored
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"
    assert TaskRecord.objects.count() == 0


@pytest.mark.parametrize("header", [None, "Bearer nope", "Bearer cvr_wrong", "Basic abc"])
def test_missing_or_wrong_token_is_401(client, header):
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    response = post(client, {"task": "demo.tasks.add", "args": [1, 2]}, **extra)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert TaskRecord.objects.count() == 0


def test_revoked_token_is_401(client, make_token):
    from django.utils import timezone

    token, secret = make_token(("write",))
    token.revoked_at = timezone.now()
    token.save()
    response = post(client, {"task": "demo.tasks.add", "args": [1, 2]}, HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.status_code == 401


def test_read_only_token_cannot_submit(client, make_token):
    _, secret = make_token(("read",))
    response = post(client, {"task": "demo.tasks.add", "args": [1, 2]}, HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


def test_same_idempotency_key_returns_the_same_task(api):
    # Given a task submitted with an Idempotency-Key
    first = post(api, {"task": "demo.tasks.add", "args": [1, 2]}, HTTP_IDEMPOTENCY_KEY="order-42")
    # When the same request is sent again
    second = post(api, {"task": "demo.tasks.add", "args": [1, 2]}, HTTP_IDEMPOTENCY_KEY="order-42")
    # Then the second answer is the first task, and only one exists
    assert first.status_code == 202
    assert second.status_code == 200
    assert second["Idempotent-Replayed"] == "true"
    assert second.json()["id"] == first.json()["id"]
    assert TaskRecord.objects.count() == 1


def test_idempotency_key_reused_for_another_task_is_409(api):
    post(api, {"task": "demo.tasks.add", "args": [1, 2]}, HTTP_IDEMPOTENCY_KEY="k")
    response = post(api, {"task": "demo.tasks.add", "args": [9, 9]}, HTTP_IDEMPOTENCY_KEY="k")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_conflict"
    assert TaskRecord.objects.count() == 1


def test_idempotency_keys_are_per_token(client, make_token):
    # Given two tokens using the same key; Then each gets its own task
    ids = []
    for name in ("a", "b"):
        _, secret = make_token(("write",), name=name)
        response = post(
            client,
            {"task": "demo.tasks.add", "args": [1, 2]},
            HTTP_AUTHORIZATION=f"Bearer {secret}",
            HTTP_IDEMPOTENCY_KEY="k",
        )
        assert response.status_code == 202
        ids.append(response.json()["id"])
    assert ids[0] != ids[1]


def test_batch_accepts_all_tasks_with_their_outbox_entries(api):
    body = {"tasks": [{"task": "demo.tasks.add", "args": [i, i]} for i in range(25)]}
    response = post(api, body, path="/api/v1/tasks/batch")
    assert response.status_code == 202
    assert len(response.json()["tasks"]) == 25
    assert TaskRecord.objects.count() == 25
    assert OutboxEntry.objects.count() == 25


def test_batch_with_one_invalid_task_stores_nothing_and_names_its_index(api):
    body = {"tasks": [{"task": "demo.tasks.add", "args": [1, 2]}, {"task": "demo.tasks.add", "args": [1]}]}
    response = post(api, body, path="/api/v1/tasks/batch")
    assert response.status_code == 400
    assert "tasks[1]" in response.json()["error"]["message"]
    assert TaskRecord.objects.count() == 0


def test_batch_over_1000_is_refused(api):
    body = {"tasks": [{"task": "demo.tasks.noop"}] * 1001}
    response = post(api, body, path="/api/v1/tasks/batch")
    assert response.status_code == 400
    assert TaskRecord.objects.count() == 0


def test_deferred_task_waits_in_the_outbox_unleased(api):
    # Given a task that must not run before a future time
    response = post(api, {"task": "demo.tasks.noop", "run_after": "2099-01-01T08:00:00Z"})
    # Then it is accepted, and its outbox entry is not due and not leased to a publisher
    assert response.status_code == 202
    entry = OutboxEntry.objects.get()
    assert entry.available_at.year == 2099
    assert entry.locked_until is None
