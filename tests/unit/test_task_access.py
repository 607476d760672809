"""Which tasks a token may run over HTTP: each task says (`@task(http=...)`), the catalog shows
each token only those, and Conveyor's own maintenance is never open to non-admin tokens."""

import pytest
from django.tasks import task

from conveyor import catalog
from conveyor.core.models import TaskRecord

pytestmark = pytest.mark.django_db


def as_token(client, make_token, *scopes):
    _, secret = make_token(scopes)
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    return client


def names(client):
    return {entry["name"] for entry in client.get("/api/v1/catalog").json()}


def test_a_write_token_cannot_run_the_purge_and_nothing_is_deleted(client, make_token):
    # Given finished tasks of other owners, and a write token
    TaskRecord.objects.create(task_path="demo.tasks.noop", status="SUCCESSFUL")
    as_token(client, make_token, "read", "write")
    # When it submits Conveyor's purge over HTTP
    response = client.post(
        "/api/v1/tasks",
        {"task": "conveyor.core.tasks.purge_finished_tasks", "kwargs": {"older_than_days": 0}},
        content_type="application/json",
    )
    # Then it is refused, and no task was accepted
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    assert TaskRecord.objects.filter(task_path="conveyor.core.tasks.purge_finished_tasks").count() == 0


@pytest.mark.parametrize("task", ["demo.tasks.send_email", "demo.tasks.send_daily_digest", "demo.tasks.csv_report"])
def test_tasks_that_act_beyond_their_caller_are_admin_only(client, make_token, task):
    as_token(client, make_token, "read", "write")
    response = client.post("/api/v1/tasks", {"task": task}, content_type="application/json")
    assert response.status_code == 403


def test_a_batch_with_one_task_the_token_may_not_run_stores_nothing_and_names_it(client, make_token):
    as_token(client, make_token, "read", "write")
    body = {"tasks": [{"task": "demo.tasks.noop"}, {"task": "demo.tasks.send_email", "args": ["a@b.c", "s", "b"]}]}
    response = client.post("/api/v1/tasks/batch", body, content_type="application/json")
    assert response.status_code == 403
    assert response.json()["error"]["message"].startswith("tasks[1]: ")
    assert TaskRecord.objects.count() == 0


def test_the_catalog_shows_each_token_only_what_it_may_run(client, make_token):
    # Given a write token and an admin token
    write_names = names(as_token(client, make_token, "read", "write"))
    admin_names = names(as_token(client, make_token, "admin"))
    # Then the write token sees the open tasks only; the admin also the admin-only ones
    assert {"demo.tasks.add", "demo.tasks.noop"} <= write_names
    assert not write_names & {"conveyor.core.tasks.purge_finished_tasks", "demo.tasks.send_email"}
    assert {"conveyor.core.tasks.purge_finished_tasks", "demo.tasks.send_email"} <= admin_names
    # And a task not runnable over HTTP is listed for nobody
    assert "demo.tasks.thumbnail" not in admin_names


def test_an_admin_token_may_run_an_admin_only_task(client, make_token):
    as_token(client, make_token, "admin")
    response = client.post("/api/v1/tasks", {"task": "demo.tasks.csv_report"}, content_type="application/json")
    assert response.status_code == 202


def test_no_token_may_run_a_task_closed_to_http(client, make_token):
    as_token(client, make_token, "admin")
    response = client.post(
        "/api/v1/tasks", {"task": "demo.tasks.thumbnail", "args": ["x.png"]}, content_type="application/json"
    )
    assert response.status_code == 403


def undeclared():
    """A task function whose @task says nothing about HTTP."""


def test_a_task_that_does_not_say_is_admin_only(settings, make_token):
    # Given a task declared without http=
    entry = catalog.CatalogEntry(task(undeclared))
    admin, writer = make_token(("admin",))[0], make_token(("read", "write"))[0]
    # Then it follows CONVEYOR_TASK_HTTP_DEFAULT, admin only by default
    assert entry.http == settings.CONVEYOR_TASK_HTTP_DEFAULT == "admin"
    assert entry.runnable_with(admin.has_scope) and not entry.runnable_with(writer.has_scope)
