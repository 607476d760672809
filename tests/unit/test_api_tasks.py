"""Reading, listing, cancelling and retrying tasks over HTTP; the catalog; who sees what."""

import json

import pytest

from conveyor import submission
from conveyor.core.models import OutboxEntry, TaskRecord, TaskStatus

pytestmark = pytest.mark.django_db


def make_record(owner, path="demo.tasks.add", args=(1, 2), status=TaskStatus.READY, **fields):
    record = submission.prepare(submission.TaskSpec(task_path=path, args=list(args), kwargs={}))
    record = submission.submit_many([record], owner=owner)[0]
    if status != TaskStatus.READY or fields:
        TaskRecord.objects.filter(id=record.id).update(status=status, **fields)
        record.refresh_from_db()
    return record


def test_get_task_shows_its_fields(api):
    record = make_record(api.token, return_value=10, status=TaskStatus.SUCCESSFUL)
    response = api.get(f"/api/v1/tasks/{record.id}")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["return_value"], body["task"]) == ("SUCCESSFUL", 10, "demo.tasks.add")


def test_unknown_or_malformed_task_id_is_404(api):
    assert api.get("/api/v1/tasks/00000000-0000-0000-0000-000000000000").status_code == 404
    response = api.get("/api/v1/tasks/not-a-uuid")
    assert response.status_code == 404
    assert response.json()["error"]["message"]


def test_a_token_sees_only_its_own_tasks(api, make_token):
    # Given a task submitted by another token
    other, _ = make_token(("write",), name="other")
    theirs = make_record(other)
    mine = make_record(api.token)
    # Then this token can neither get it nor list it
    assert api.get(f"/api/v1/tasks/{theirs.id}").status_code == 404
    ids = [item["id"] for item in api.get("/api/v1/tasks").json()["items"]]
    assert ids == [str(mine.id)]
    assert api.post(f"/api/v1/tasks/{theirs.id}/cancel").status_code == 404


def test_an_admin_token_sees_every_task(client, make_token):
    other, _ = make_token(("write",), name="other")
    theirs = make_record(other)
    _, admin = make_token(("admin",), name="admin")
    response = client.get(f"/api/v1/tasks/{theirs.id}", HTTP_AUTHORIZATION=f"Bearer {admin}")
    assert response.status_code == 200


def test_list_filters_by_status_task_and_queue(api):
    make_record(api.token, status=TaskStatus.FAILED)
    ok = make_record(api.token, status=TaskStatus.SUCCESSFUL)
    make_record(api.token, path="demo.tasks.noop", args=())
    items = api.get("/api/v1/tasks", {"status": "SUCCESSFUL"}).json()["items"]
    assert [i["id"] for i in items] == [str(ok.id)]
    items = api.get("/api/v1/tasks", {"task": "demo.tasks.noop"}).json()["items"]
    assert [i["task"] for i in items] == ["demo.tasks.noop"]
    assert api.get("/api/v1/tasks", {"queue": "emails"}).json()["items"] == []
    assert api.get("/api/v1/tasks", {"status": "BOGUS"}).status_code == 400


def test_cursor_pagination_visits_every_task_once(api):
    # Given 7 tasks; When listed 3 at a time following next_cursor
    created = {str(make_record(api.token, args=(i, i)).id) for i in range(7)}
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = api.get("/api/v1/tasks", params).json()
        seen += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
    # Then every task appears exactly once, newest first, over 3 pages
    assert pages == 3
    assert len(seen) == len(set(seen)) == 7
    assert set(seen) == created


def test_bad_cursor_or_limit_is_400(api):
    assert api.get("/api/v1/tasks", {"cursor": "!!!"}).status_code == 400
    assert api.get("/api/v1/tasks", {"limit": 0}).status_code == 400


def test_cancel_a_ready_task(api):
    record = make_record(api.token)
    response = api.post(f"/api/v1/tasks/{record.id}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "CANCELLED"
    record.refresh_from_db()
    assert record.status == TaskStatus.CANCELLED and record.finished_at


@pytest.mark.parametrize("status", [TaskStatus.RUNNING, TaskStatus.SUCCESSFUL, TaskStatus.CANCELLED])
def test_cancel_a_started_or_finished_task_is_409(api, status):
    record = make_record(api.token, status=status)
    response = api.post(f"/api/v1/tasks/{record.id}/cancel")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "not_cancellable"


def test_retry_a_failed_task_requeues_it_with_its_history(api):
    # Given a FAILED task with one recorded error
    error = {"exception_class_path": "demo.tasks.DemoFailure", "traceback": "tb", "attempt": 1}
    record = make_record(api.token, status=TaskStatus.FAILED, errors=[error], attempts=1)
    OutboxEntry.objects.all().delete()
    # When it is retried
    response = api.post(f"/api/v1/tasks/{record.id}/retry")
    # Then it is READY again, keeps its errors, and a new outbox entry will publish it
    assert response.status_code == 202
    record.refresh_from_db()
    assert record.status == TaskStatus.READY
    assert record.errors == [error]
    assert OutboxEntry.objects.filter(task=record).count() == 1


@pytest.mark.parametrize("status", [TaskStatus.READY, TaskStatus.RUNNING, TaskStatus.SUCCESSFUL])
def test_retry_a_task_that_did_not_fail_is_409(api, status):
    record = make_record(api.token, status=status)
    response = api.post(f"/api/v1/tasks/{record.id}/retry")
    assert response.status_code == 409


def test_read_token_cannot_cancel(client, make_token):
    owner, secret = make_token(("read",))
    record = make_record(owner)
    response = client.post(f"/api/v1/tasks/{record.id}/cancel", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.status_code == 403


def test_catalog_lists_tasks_with_parameters(client, make_token):
    _, secret = make_token(("admin",))
    catalog = {
        entry["name"]: entry for entry in client.get("/api/v1/catalog", HTTP_AUTHORIZATION=f"Bearer {secret}").json()
    }
    assert {"demo.tasks.add", "demo.tasks.send_email", "demo.tasks.noop"} <= set(catalog)
    add = catalog["demo.tasks.add"]
    assert [p["name"] for p in add["parameters"]] == ["x", "y"]
    assert all(p["required"] for p in add["parameters"])
    assert catalog["demo.tasks.send_email"]["queue"] == "emails"
    # the context parameter of a takes_context task is not the caller's to pass
    assert [p["name"] for p in catalog["demo.tasks.flaky"]["parameters"]] == ["failures"]


def test_openapi_schema_describes_the_task_endpoints(client):
    schema = json.loads(client.get("/api/v1/openapi.json").content)
    assert "/api/v1/tasks" in schema["paths"]
    assert "/api/v1/tasks/{task_id}/cancel" in schema["paths"]
    assert client.get("/api/v1/docs").status_code == 200


def test_healthz_needs_no_token(client):
    assert client.get("/healthz").json() == {"status": "ok"}
