"""The first local run: `make dev` without DATABASE_URL uses SQLite. The worker's record path has a
SQLite form of each statement; here web, a worker and the relay run on a SQLite file."""

import os
import subprocess
import sys

import pytest

from tests.support.processes import ROOT, http, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def test_tasks_run_retry_and_fail_cleanly_on_sqlite(start_system, system_env, tmp_path):
    # Given the services on a SQLite database
    url = f"sqlite:///{tmp_path / 'conveyor.sqlite3'}"
    env = {**os.environ, **system_env, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings"}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    out = subprocess.run(
        [sys.executable, "manage.py", "create_token", "--scope", "admin"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    token = out.strip().splitlines()[-1]
    system = start_system(workers=1, env={"DATABASE_URL": url})

    def submit(task, *args):
        status, body, _ = http("POST", f"{system.base_url}/api/v1/tasks", {"task": task, "args": list(args)}, token)
        assert status == 202, body
        return body["id"]

    def task(task_id):
        return http("GET", f"{system.base_url}/api/v1/tasks/{task_id}", token=token)[1]

    # When a task succeeds, one fails once then succeeds, and one returns what cannot be stored
    ok, flaky, unstorable = (
        submit("demo.tasks.add", 4, 6),
        submit("demo.tasks.flaky", 1),
        submit("demo.tasks.add", 1e308, 1e308),
    )
    wait_for(
        lambda: all(task(t)["status"] in ("SUCCESSFUL", "FAILED") for t in (ok, flaky, unstorable)), 60, "the tasks"
    )
    # Then each ends as on PostgreSQL
    assert (task(ok)["status"], task(ok)["return_value"]) == ("SUCCESSFUL", 10)
    assert (task(flaky)["status"], task(flaky)["attempts"], task(flaky)["error_count"]) == ("SUCCESSFUL", 2, 1)
    assert task(unstorable)["status"] == "FAILED"
    assert task(unstorable)["errors"][-1]["exception_class_path"] == "conveyor.errors.UnstorableResult"
    # And a chord runs to its callback on SQLite too (the workflow path has no PostgreSQL-only SQL)
    body = {
        "chord": {
            "group": [{"task": "demo.tasks.add", "args": [i, i]} for i in range(5)],
            "then": {"task": "demo.tasks.total"},
        }
    }
    status, workflow, _ = http("POST", f"{system.base_url}/api/v1/workflows", body, token)
    assert status == 202, workflow
    url = f"{system.base_url}/api/v1/workflows/{workflow['id']}"
    wait_for(lambda: http("GET", url, token=token)[1]["status"] == "SUCCESSFUL", 60, "the chord")
    assert http("GET", url, token=token)[1]["return_value"] == 20
