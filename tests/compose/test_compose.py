"""`docker compose up --scale worker=4` on a real Docker engine (make test-compose).

The real docker-compose.yml and Dockerfile on a private dockerd (tests/compose/stack.py),
checked from outside as a user would: through the published web and Prometheus ports on
loopback and through compose itself. The tests share one stack and run in file order:
the last ones stop it, take it down and bring it up again.
"""

import io
import re
import time
from datetime import datetime

import pytest
import requests

from tests.support.processes import wait_for

pytestmark = [pytest.mark.compose, pytest.mark.timeout(1800)]

FINISHED = {"SUCCESSFUL", "FAILED", "CANCELLED"}
APP_SERVICES = ("web", "worker", "relay", "scheduler")


def task(api, task_id):
    status, body = api("GET", f"/api/v1/tasks/{task_id}")
    assert status == 200, body
    return body


def submit(api, name, *args):
    status, body = api("POST", "/api/v1/tasks", {"task": name, "args": list(args)})
    assert status == 202, body
    return body["id"]


def wait_finished(api, task_id, timeout=60):
    wait_for(lambda: task(api, task_id)["status"] in FINISHED, timeout, f"task {task_id} to finish")
    return task(api, task_id)


def all_tasks(api):
    """Every task the token sees, by id (keyset pages of 100)."""
    found, cursor = {}, None
    while True:
        status, page = api("GET", "/api/v1/tasks?limit=100" + (f"&cursor={cursor}" if cursor else ""))
        assert status == 200, page
        found.update((item["id"], item) for item in page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            return found


def when(text):
    """An RFC 3339 time from the API or the engine (which gives nanoseconds) as a datetime."""
    return datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", text))


def host_of(worker_id):
    """A worker id is host:...:pid; in a container the host name is the container's."""
    return worker_id.split(":", 1)[0]


def png():
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (640, 480), (200, 40, 90)).save(buffer, format="PNG")
    return buffer.getvalue()


# --- up ---------------------------------------------------------------------------------


def test_every_container_with_a_healthcheck_goes_healthy(stack):
    # Given the stack brought up with --scale worker=4 (the stack fixture waited)
    # When every container's health is read from the engine
    health = stack.health()
    # Then each is healthy: one per service, four workers
    assert set(health.values()) == {"healthy"}, health
    running = stack.containers()
    assert len(running["worker"]) == 4
    assert {name for name in running if name != "migrate"} == {s for s in stack.services if s != "migrate"}


def test_the_migrate_job_finished_before_any_app_service_started(stack):
    # Given the one-shot migrate service and the app services it gates
    containers = stack.containers()
    (migrate,) = containers["migrate"]
    # Then migrate exited 0, and every app container started after it finished
    assert migrate["State"]["ExitCode"] == 0, migrate["State"]
    finished = when(migrate["State"]["FinishedAt"])
    started = {c["Name"]: when(c["State"]["StartedAt"]) for service in APP_SERVICES for c in containers[service]}
    assert all(at > finished for at in started.values()), (finished, started)


def test_a_token_from_compose_exec_is_accepted_by_the_published_web_port(api):
    # Given a token from `compose exec web python manage.py create_token --scope admin`
    # When it lists tasks through the published port
    status, body = api("GET", "/api/v1/tasks?limit=1")
    # Then the API answers
    assert status == 200, body


# --- 200 tasks over four worker containers ----------------------------------------------


@pytest.fixture(scope="module")
def two_hundred(stack, api):
    """200 demo.tasks.sleep(0.2) submitted in one batch, all finished."""
    began = time.monotonic()
    status, body = api("POST", "/api/v1/tasks/batch", {"tasks": [{"task": "demo.tasks.sleep", "args": [0.2]}] * 200})
    assert status == 202, body
    ids = [item["id"] for item in body["tasks"]]

    def finished():
        seen = all_tasks(api)
        return all(seen[i]["status"] in FINISHED for i in ids)

    wait_for(finished, 120, "200 tasks to finish")
    stack.figures["200 tasks"] = time.monotonic() - began
    print(f"\n200 x sleep(0.2) over 4 worker containers: {stack.figures['200 tasks']:.1f} s")
    seen = all_tasks(api)
    return [seen[i] for i in ids]


def test_two_hundred_tasks_all_end_successful(two_hundred):
    # Given 200 tasks submitted through the published web port
    # Then every one ended SUCCESSFUL in one attempt
    assert [t["status"] for t in two_hundred] == ["SUCCESSFUL"] * 200
    assert {t["attempts"] for t in two_hundred} == {1}


def test_each_of_the_four_worker_containers_served_some_of_them(stack, two_hundred):
    # Given the four worker containers' host names
    workers = {c["Config"]["Hostname"] for c in stack.containers()["worker"]}
    # When the tasks' worker ids are read
    served = {host_of(worker_id) for t in two_hundred for worker_id in t["worker_ids"]}
    # Then all four ran tasks, and nothing else did
    assert served == workers


# --- the thumbnail demo -----------------------------------------------------------------


@pytest.fixture(scope="module")
def thumbnail(stack, token):
    """A PNG uploaded to the demo endpoint; its thumbnail task, finished."""
    response = requests.post(
        stack.url("WEB_PORT", "/api/v1/demo/profile-pictures"),
        files={"image": ("face.png", png(), "image/png")},
        headers={"Authorization": f"Bearer {token}"},
        timeout=15,
    )
    assert response.status_code == 202, response.text
    return response.json()["id"]


def test_the_thumbnail_demo_writes_into_the_media_volume_the_web_service_reads(stack, api, thumbnail):
    # Given an upload the web container stored and a worker container resized
    record = wait_finished(api, thumbnail)
    assert record["status"] == "SUCCESSFUL", record
    paths = list(record["return_value"]["thumbnails"].values())
    assert paths
    # When the web container looks in its media folder
    # Then every thumbnail the worker wrote is there (one volume shared by both services)
    for path in paths:
        stack.exec("web", "test", "-s", f"/data/media/{path}")
    containers = stack.containers()
    volumes = {
        service: {m["Name"] for c in containers[service] for m in c["Mounts"] if m["Destination"] == "/data/media"}
        for service in ("web", "worker")
    }
    assert volumes["web"] == volumes["worker"] == {"conveyor_media"}, volumes


# --- Prometheus -------------------------------------------------------------------------


def test_prometheus_scrapes_every_service_and_every_worker_replica(stack):
    # Given Prometheus with deploy/prometheus (DNS discovery of each replica)
    expected = {"web": 1, "worker": 4, "scheduler": 1, "rabbitmq": 1, "prometheus": 1}

    def targets():
        body = requests.get(stack.url("PROMETHEUS_PORT", "/api/v1/targets"), timeout=5).json()
        return body["data"]["activeTargets"]

    def all_up():
        found = targets()
        counts = {job: sum(1 for t in found if t["labels"]["job"] == job) for job in expected}
        return counts == expected and all(t["health"] == "up" for t in found)

    # When its targets are read (scrape and discovery run every 15 s)
    try:
        wait_for(all_up, 90, "every Prometheus target up")
    except TimeoutError:
        found = [(t["labels"]["job"], t["scrapeUrl"], t["health"], t["lastError"]) for t in targets()]
        pytest.fail(f"targets: {found}")
    # Then every job has its targets, all up
    assert len(targets()) == sum(expected.values())


# --- logs ---------------------------------------------------------------------------------


def test_no_app_service_logged_an_error_while_serving(stack, two_hundred, thumbnail):
    # Given the app services after start, 200 tasks and a thumbnail
    logs = stack.compose("logs", "--no-color", "migrate", *APP_SERVICES).stdout.splitlines()
    # When their logs are searched for errors (gunicorn's "[ERROR]", logging's " ERROR ")
    errors = [line for line in logs if re.search(r"\[ERROR\]| ERROR |Traceback|CRITICAL", line)]
    # Then there are none (the control socket on a read-only file system was one)
    assert errors == []


# --- stop, down, up again -----------------------------------------------------------------


@pytest.fixture(scope="module")
def restarted(stack, api, two_hundred, thumbnail):
    """A task running when `compose stop` begins; then `compose down` and a second `up`."""
    long_task = submit(api, "demo.tasks.sleep", 6)
    wait_for(lambda: task(api, long_task)["status"] == "RUNNING", 30, "the long task to start")
    began = time.monotonic()
    stack.compose("stop", timeout=300)
    stopped_in = time.monotonic() - began
    stopped = stack.containers()
    stack.compose("down", timeout=300)
    volumes_after_down = stack.volumes()
    stack.figures["second up"] = stack.up()
    stack.figures["healthy after second up"] = stack.wait_healthy()
    figures = stack.figures
    print(
        f"\ncompose stop {stopped_in:.1f} s; second up {figures['second up']:.1f} s, "
        f"healthy after {figures['healthy after second up']:.1f} s"
    )
    return {"task": long_task, "stopped_in": stopped_in, "stopped": stopped, "volumes": volumes_after_down}


def test_compose_stop_lets_a_running_task_finish_within_the_grace_period(stack, api, restarted):
    # Given a task that was running when `compose stop` began
    record = task(api, restarted["task"])
    # Then it finished in its one attempt, before its worker container exited 0 (not
    # SIGKILLed at the end of the grace period)
    assert record["status"] == "SUCCESSFUL" and record["attempts"] == 1, record
    (host,) = {host_of(w) for w in record["worker_ids"]}
    (container,) = [c for c in restarted["stopped"]["worker"] if c["Config"]["Hostname"] == host]
    assert container["State"]["ExitCode"] == 0, container["State"]
    assert when(record["finished_at"]) < when(container["State"]["FinishedAt"])
    assert restarted["stopped_in"] < 90


def test_compose_down_keeps_the_named_volumes(restarted):
    # Given `compose down` without -v
    # Then the data volumes are still there
    expected = {f"conveyor_{name}" for name in ("postgres-data", "rabbitmq-data", "media", "prometheus-data")}
    assert expected <= restarted["volumes"], restarted["volumes"]


def test_a_second_up_keeps_tasks_tokens_and_media(stack, api, two_hundred, thumbnail, restarted):
    # Given the stack brought up again after `compose down`
    # Then the earlier tasks are there, the token still works, and the thumbnails too
    seen = all_tasks(api)
    assert all(seen[t["id"]]["status"] == "SUCCESSFUL" for t in two_hundred)
    for path in task(api, thumbnail)["return_value"]["thumbnails"].values():
        stack.exec("web", "test", "-s", f"/data/media/{path}")


def test_the_stack_brought_up_again_runs_new_tasks(api, restarted):
    # Given the second up (RabbitMQ's user and vhost come back from its volume)
    # When a task is submitted
    record = wait_finished(api, submit(api, "demo.tasks.add", 2, 3))
    # Then it runs
    assert (record["status"], record["return_value"]) == ("SUCCESSFUL", 5)
