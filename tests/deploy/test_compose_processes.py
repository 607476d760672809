"""Compose as processes: the services started with exactly the command and environment
docker-compose.yml gives them (see compose_processes.py for the only mappings), their
healthchecks run as compose would run them, and tasks submitted through the web
service complete on every one of four worker replicas."""

import subprocess
import sys
import time

import pytest
from django.conf import settings
from django.db import connection

from conveyor.core.models import TaskRecord, TaskStatus
from tests.deploy import compose
from tests.deploy.compose import ROOT
from tests.deploy.compose_processes import ComposeHost
from tests.support.processes import Service, http, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.integration]
WORKERS = 4


@pytest.fixture
def host(transactional_db, tmp_path):
    env_file = tmp_path / ".env"
    subprocess.run(
        [sys.executable, "scripts/generate-env.py", "--output", str(env_file)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    resolved = compose.interpolate(compose.load(), compose.read_env_file(env_file))
    db = connection.settings_dict
    database_url = (
        f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    )
    return ComposeHost(resolved, database_url, settings.BROKER_URL, tmp_path / "host")


@pytest.fixture
def running(host, tmp_path):
    started = []

    def start(replica):
        service = Service(replica.name, replica.command, replica.env, tmp_path)
        service.replica = replica
        started.append(service.start())
        return service

    yield start
    for service in reversed(started):
        service.stop(timeout=90)


def run(replica, *command):
    return subprocess.run(
        list(command) or replica.command, cwd=ROOT, env=replica.env, capture_output=True, text=True, timeout=120
    )


def healthy(replica):
    return run(replica, *replica.healthcheck).returncode == 0


def wait_healthy(services, timeout=120):
    for service in services:
        try:
            wait_for(lambda s=service: healthy(s.replica), timeout, f"{service.name} healthcheck")
        except TimeoutError:
            raise AssertionError(f"{service.name} never became healthy:\n{service.output()[-3000:]}") from None


def test_compose_services_as_processes_run_tasks_on_all_four_workers(host, running):
    # Given the one-shot migrate step, run as compose runs it, succeeds
    migrate = run(host.replica("migrate"))
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    # and the image's build step (collectstatic) has produced the static folder
    web = host.replica("web")
    assert run(web, sys.executable, "manage.py", "collectstatic", "--noinput", "-v0").returncode == 0
    # When web, relay and `--scale worker=4` are started and their healthchecks pass
    workers = [host.replica("worker", index) for index in range(1, WORKERS + 1)]
    for replica in workers:
        assert not healthy(replica), "a worker's healthcheck passed before the worker ran"
    services = [running(web), running(host.replica("relay")), *[running(r) for r in workers]]
    wait_healthy(services)
    base = f"http://127.0.0.1:{host.host_port('web', 8000)}"
    # And an admin token is made the way the README says (manage.py create_token in web)
    token = (
        run(web, sys.executable, "manage.py", "create_token", "--name", "compose", "--scope", "admin")
        .stdout.strip()
        .splitlines()[-1]
    )
    # When tasks are submitted through the web service until every worker has run some
    replica_of = {}
    ids = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for _ in range(8):
            status, body, _ = http(
                "POST", f"{base}/api/v1/tasks", {"task": "demo.tasks.add", "args": [len(ids), 1000]}, token
            )
            assert status == 202, body
            ids.append(body["id"])
        wait_for(
            lambda: TaskRecord.objects.filter(id__in=ids, status=TaskStatus.SUCCESSFUL).count() == len(ids),
            60,
            "tasks to finish",
        )
        for service in services[2:]:
            for pid in [service.proc.pid, *service.children()]:
                replica_of[pid] = service.name
        seen = {
            replica_of.get(int(w.rsplit(":", 1)[1]))
            for r in TaskRecord.objects.filter(id__in=ids)
            for w in r.worker_ids
        }
        if len(seen - {None}) == WORKERS or len(ids) >= 200:
            break
    # Then every task succeeded with its value, and all four worker replicas ran tasks
    records = list(TaskRecord.objects.filter(id__in=ids))
    assert {r.status for r in records} == {TaskStatus.SUCCESSFUL}
    assert sorted(r.return_value for r in records) == [i + 1000 for i in range(len(ids))]
    assert seen == {s.name for s in services[2:]}, f"tasks ran on {seen} after {len(ids)} tasks"
    # And the API reports one of them as a client sees it
    status, body, _ = http("GET", f"{base}/api/v1/tasks/{ids[0]}", token=token)
    assert (status, body["status"], body["return_value"]) == (200, "SUCCESSFUL", 1000)


def test_scheduler_replicas_run_as_compose_says(host, running):
    # Given two scheduler replicas (two are safe), started as compose starts them
    replicas = [host.replica("scheduler", index) for index in (1, 2)]
    for replica in replicas:
        port = replica.env.get("SCHEDULER_METRICS_PORT")
        from tests.deploy.compose_processes import free_port, port_free

        if port and (replica.index > 1 or not port_free(int(port))):
            # Each container has its own network namespace; on one host the second
            # replica's metrics port must differ, and so must the first's when another
            # process (a `make dev` left running) holds it.
            replica.env["SCHEDULER_METRICS_PORT"] = str(free_port())
    services = [running(r) for r in replicas]
    # Then both pass the healthcheck compose runs
    wait_healthy(services)
