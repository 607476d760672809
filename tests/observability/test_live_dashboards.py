"""The system as processes, scraped by a real Prometheus: every dashboard panel shows data,
every alert expression evaluates, and counts are right across processes.

Web (2 gunicorn processes) and 2 worker services (2 Dramatiq processes each) run as in
compose, with their metrics scraped on loopback by Debian's prometheus using
deploy/prometheus/prometheus.yml (discovery replaced by loopback targets, 1 s interval).
"""

import os
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

from tests.observability.support import ROOT, Prometheus, dashboard_queries, loopback_config, require_binary
from tests.support.processes import Service, System, free_port, http, wait_for

# No django_db mark: the tests only ask Prometheus. The module's `live` fixture writes its
# rows outside any test transaction (the processes must see them) and empties the database
# once its processes have stopped. A per-test flush would TRUNCATE every table under the
# running scheduler and workers, and once deadlocked with them.
pytestmark = [pytest.mark.e2e, pytest.mark.integration]

FINAL = {"SUCCESSFUL", "FAILED", "CANCELLED"}
TASK_FOR_VARIABLE = "demo.tasks.flaky"  # the per-task dashboard's $task in this test
RATE_WINDOW = "5m"  # stands in for Grafana's $__rate_interval: the whole run
SCHEDULER_START = ROOT / "services" / "scheduler" / "start.sh"
NO_SCHEDULER = "the scheduler service is not on this branch yet (services/scheduler/start.sh missing)"

# (task, args, kwargs, how many) -> 27 tasks that reach a final status
MIX = [
    ("demo.tasks.add", [4, 6], {}, 12),
    ("demo.tasks.fail", [], {"message": "planned"}, 4),
    ("demo.tasks.flaky", [], {"failures": 1}, 3),
    ("demo.tasks.sleep", [0.5], {}, 2),
    ("demo.tasks.send_email", ["ops@example.com", "hello", "body"], {}, 1),
]
BATCH = 5  # demo.tasks.noop through /tasks/batch
# The mix's finished tasks: everything but the scheduled ones on the "reports" queue.
RUN_FINISHED = 'sum(conveyor_tasks_finished_total{queue!="reports"})'


def scrape(target):
    with urllib.request.urlopen(f"http://{target}/metrics", timeout=5) as response:
        return response.read().decode()


def targets_up(prometheus):
    return sum(t["health"] == "up" for t in prometheus.api("targets")["data"]["activeTargets"])


def database_url():
    s = connection.settings_dict
    return f"postgres://{s['USER']}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@pytest.fixture(scope="module")
def live(django_db_setup, django_db_blocker):
    require_binary("prometheus")
    with django_db_blocker.unblock():
        from conveyor import tokens

        _, secret = tokens.create("observability-test", ["admin"])
        # A schedule that fires every second, so the scheduler panels have real fires.
        from conveyor.scheduling.models import Schedule

        # Its tasks go to the "reports" queue, which the mix below never uses, so the
        # counts of the mix stay exact (RUN_FINISHED).
        Schedule.objects.create(
            name="live-every-second", task_path="demo.tasks.noop", queue_name="reports", interval_seconds=1
        )
        env = {"DATABASE_URL": database_url(), "BROKER_URL": os.environ["BROKER_URL"], "DJANGO_DEBUG": "true"}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        system = System(env, workers=2, worker_threads=2)
        metrics_root = Path(tempfile.mkdtemp(prefix="conveyor-metrics-"))
        web = system.services["web"]
        web.env = {**system.env, "WEB_PROCESSES": "2", "PROMETHEUS_MULTIPROC_DIR": str(metrics_root / "web")}
        worker_targets = []
        for worker in system.workers:
            port = free_port()
            worker_targets.append(f"127.0.0.1:{port}")
            worker.env = {
                **system.env,
                "WORKER_PROCESSES": "2",
                "dramatiq_prom_host": "127.0.0.1",
                "dramatiq_prom_port": str(port),
                "PROMETHEUS_MULTIPROC_DIR": str(metrics_root / worker.name),
            }
        system.services["relay"].env = {k: v for k, v in system.env.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
        targets = {"web": [f"127.0.0.1:{system.port}"], "worker": worker_targets}
        if SCHEDULER_START.exists():
            port = free_port()
            scheduler_env = {**system.env, "SCHEDULER_METRICS_PORT": str(port)}
            system.services["scheduler"] = Service("scheduler", [str(SCHEDULER_START)], scheduler_env, system.log_dir)
            targets["scheduler"] = [f"127.0.0.1:{port}"]
        prometheus_port = free_port()
        # The shared RabbitMQ has no rabbitmq_prometheus plugin and we never reconfigure it,
        # so the `rabbitmq` job is left out; no panel or alert depends on its metrics.
        targets["prometheus"] = [f"127.0.0.1:{prometheus_port}"]
        prometheus = Prometheus(loopback_config(targets), prometheus_port)
        try:
            system.start()
            wait_for(lambda: all(scrape(t) for t in worker_targets), 60, "worker exporters")
            prometheus.start()
            # Scrape before the run: a counter's first sample must be the zero the worker
            # pre-created, or increase() cannot see the run's first dead letters.
            wait_for(lambda: targets_up(prometheus) == sum(len(t) for t in targets.values()), 60, "every target up")
            run = run_mix(system, secret)
            yield {"system": system, "prometheus": prometheus, "run": run, "scheduler": "scheduler" in targets}
        except Exception:
            print(system.logs())
            raise
        finally:
            system.stop()
            prometheus.stop()
            call_command("flush", interactive=False, verbosity=0)


def run_mix(system, secret):
    base = f"{system.base_url}/api/v1"
    ids, posts = [], 0
    for task, args, kwargs, count in MIX:
        for _ in range(count):
            status, body, _ = http(
                "POST", f"{base}/tasks", {"task": task, "args": args, "kwargs": kwargs}, token=secret
            )
            posts += 1
            assert status == 202, body
            ids.append(body["id"])
    status, body, _ = http(
        "POST", f"{base}/tasks/batch", {"tasks": [{"task": "demo.tasks.noop"}] * BATCH}, token=secret
    )
    assert status == 202, body
    ids += [t["id"] for t in body["tasks"]]
    # Client errors, so that the error panels have something to show
    assert http("POST", f"{base}/tasks", {"task": "no.such.task"}, token=secret)[0] == 400
    posts += 1
    assert http("GET", f"{base}/tasks/00000000-0000-0000-0000-000000000000", token=secret)[0] == 404

    def all_final():
        return all(http("GET", f"{base}/tasks/{i}", token=secret)[1]["status"] in FINAL for i in ids)

    wait_for(all_final, 120, "every task to finish")
    return {"tasks": len(ids), "posts": posts}


def settle(prometheus, expr, expected, what, timeout=60):
    """Wait until Prometheus has scraped the final value (scrapes lag the processes)."""
    wait_for(lambda: prometheus.value(expr) == expected, timeout, what)
    time.sleep(3)  # a few more scrapes: the value must stay, not pass through
    return prometheus.value(expr)


def test_finished_tasks_scraped_equal_tasks_run_across_worker_processes(live):
    # Given 27 tasks run by 2 worker services of 2 Dramatiq processes each
    prometheus, expected = live["prometheus"], live["run"]["tasks"]
    # When Prometheus scrapes the workers' exporters
    # Then the finished count is exactly the number of tasks: none lost, none twice
    assert settle(prometheus, RUN_FINISHED, expected, "finished count") == expected
    assert prometheus.value('sum(conveyor_tasks_finished_total{status="FAILED"})') == 4
    assert prometheus.value('sum(conveyor_task_retries_total{task="demo.tasks.flaky"})') == 3
    assert prometheus.value("sum(conveyor_worker_processes)") == 4


def test_web_requests_counted_across_gunicorn_processes(live):
    prometheus, posts = live["prometheus"], live["run"]["posts"]
    expr = 'sum(conveyor_http_requests_total{view="api/v1/tasks",method="POST"})'
    assert settle(prometheus, expr, posts, "POST count") == posts


def check_panels(live, queries):
    prometheus = live["prometheus"]
    settle(prometheus, RUN_FINISHED, live["run"]["tasks"], "finished count")
    failures = []
    for board, panel, expr in queries:
        query = expr.replace("$__rate_interval", RATE_WINDOW).replace("$task", TASK_FOR_VARIABLE)
        answer = prometheus.query(query)
        if answer["status"] != "success":
            failures.append(f"{board} / {panel}: {query}: error {answer.get('error')}")
        elif not answer["data"]["result"]:
            failures.append(f"{board} / {panel}: {query}: no data")
    assert not failures, "\n".join(failures)


def test_every_dashboard_panel_query_returns_data(live):
    # Given every query of every Grafana panel (the scheduler's in the next test)
    queries = [q for q in dashboard_queries() if "conveyor_scheduler_" not in q[2]]
    assert len(queries) > 20
    # When Prometheus evaluates each after the run; Then none errors and each has data
    check_panels(live, queries)


def test_scheduler_panel_queries_return_data(live):
    queries = [q for q in dashboard_queries() if "conveyor_scheduler_" in q[2]]
    assert queries
    if not live["scheduler"]:
        pytest.skip(f"{len(queries)} scheduler panel queries not checked: {NO_SCHEDULER}")
    check_panels(live, queries)


def test_every_alert_expression_evaluates(live):
    prometheus = live["prometheus"]
    time.sleep(2)  # at least one rule evaluation after startup (1 s interval)
    groups = prometheus.api("rules")["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"] if rule["type"] == "alerting"]
    assert len(rules) >= 8
    failures = []
    for rule in rules:
        answer = prometheus.query(rule["query"])
        if answer["status"] != "success":
            failures.append(f"{rule['name']}: {answer.get('error')}")
        if rule.get("health") == "err":
            failures.append(f"{rule['name']}: {rule.get('lastError')}")
    assert not failures, "\n".join(failures)


def test_alerts_see_the_failures_of_the_run(live):
    # The run dead-lettered 4 failing tasks: the dead-letter alert must be pending or firing.
    prometheus = live["prometheus"]
    wait_for(
        lambda: any(
            a["labels"]["alertname"] == "ConveyorMessagesDeadLettered"
            for a in prometheus.api("alerts")["data"]["alerts"]
        ),
        30,
        "ConveyorMessagesDeadLettered",
    )
