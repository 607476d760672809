"""Conveyor end to end with everything on: task rows, outbox, publisher confirms, lifecycle.

The services run as real processes with the same start scripts as compose and `make dev`
(web: gunicorn; worker: rundramatiq, one process each; relay), against the benchmark's
own database and vhost. This process is a Django client of the same database: it
preloads tasks with submission.submit_many, calls .enqueue(), and reads the task rows,
whose enqueued_at / started_at / finished_at give every Conveyor figure.
"""

import http.client
import json
import re
import shutil
import statistics
import subprocess
import threading
import time
from pathlib import Path

import pika

from bench import infra

NOOP = "demo.tasks.noop"
SLEEP = "demo.tasks.sleep"


class Conveyor:
    def __init__(self, cfg, database_url, broker_url, port):
        self.cfg = cfg
        self.broker_url = broker_url
        self.port = port
        self.env = infra.python_env(
            DJANGO_SETTINGS_MODULE="config.settings",
            DATABASE_URL=database_url,
            BROKER_URL=broker_url,
            DJANGO_DEBUG="false",  # DEBUG keeps every SQL query in memory
            DJANGO_SECRET_KEY="bench-only-" + "x" * 40,
            WEB_BIND=f"127.0.0.1:{port}",
            WEB_PROCESSES=cfg.web_processes,
            WEB_THREADS=cfg.web_threads,
            WEB_ACCESS_LOG="",
            WORKER_PROCESSES=1,
            WORKER_THREADS=cfg.worker_threads,
        )
        self.web = self.relay = None
        self.workers = []

    # --- processes -------------------------------------------------------------
    def start_web_and_relay(self):
        # The web service serves the baseline view too (bench.settings adds it).
        self.web = infra.Process(
            "web", ["services/web/start.sh"], {**self.env, "DJANGO_SETTINGS_MODULE": "bench.settings"}
        )
        self.relay = infra.Process("relay", ["services/relay/start.sh"], self.env)
        infra.wait_for(lambda: self.get("/healthz")[0] == 200, 60, "web /healthz", interval=0.2)

    def start_workers(self, count, wait_ready=False):
        for _ in range(count):
            # Each worker's metrics exporter needs a port (and metrics folder) of its own.
            env = {**self.env, "dramatiq_prom_port": str(infra.free_port())}
            self.workers.append(infra.Process(f"worker{len(self.workers) + 1}", ["services/worker/start.sh"], env))
        if wait_ready:
            self.wait_ready()

    def wait_ready(self):
        for worker in self.workers:
            infra.wait_for(lambda w=worker: "ready for action" in w.output(), 90, f"{worker.name} boot", interval=0.05)

    def stop_workers(self):
        for worker in self.workers:
            worker.stop()
        self.workers = []

    def worker_rss_mb(self):
        """RSS of the process that runs tasks: the (only) child of rundramatiq's main process."""
        sizes = [infra.rss_mb(pid) for worker in self.workers for pid in worker.children()]
        return max(s for s in sizes if s) if sizes else None

    def web_rss_mb(self):
        sizes = [infra.rss_mb(pid) for pid in self.web.children()]
        return max(s for s in sizes if s) if sizes else None

    # --- state -----------------------------------------------------------------
    def reset(self):
        """Empty the task tables and the queue between runs, so no run inherits a backlog."""
        import logging

        from django.db import OperationalError, connection

        from conveyor.core.models import OutboxEntry
        from conveyor.publisher import publisher

        publisher.flush(timeout=30)
        # The web's publisher may still be working through a burst of submissions:
        # TRUNCATE while it deletes outbox rows deadlocks.
        infra.wait_for(lambda: not OutboxEntry.objects.exists(), 120, "outbox empty", interval=0.2)
        for attempt in range(5):
            try:
                with connection.cursor() as cursor:
                    # CASCADE: the scheduler's fire history references task rows.
                    cursor.execute("TRUNCATE conveyor_outboxentry, conveyor_taskrecord, bench_baselinerow CASCADE")
                break
            except OperationalError:
                if attempt == 4:
                    raise
                time.sleep(0.5)
        pika_log = logging.getLogger("pika")
        level, pika_log.level = pika_log.level, logging.CRITICAL  # a queue not declared yet is fine
        try:
            with pika.BlockingConnection(pika.URLParameters(self.broker_url)) as conn:
                for queue in ("default", "default.DQ"):
                    try:
                        conn.channel().queue_purge(queue)
                    except pika.exceptions.ChannelClosedByBroker:
                        pass
        finally:
            pika_log.level = level

    def preload(self, task_path, args, count, chunk=1000):
        """Submit `count` tasks (no worker running) and wait until RabbitMQ confirmed them all."""
        from conveyor import submission
        from conveyor.core.models import OutboxEntry
        from conveyor.publisher import publisher

        spec = submission.TaskSpec(task_path=task_path, args=list(args), kwargs={})
        for start in range(0, count, chunk):
            records = [submission.prepare(spec) for _ in range(min(chunk, count - start))]
            submission.submit_many(records)
            # One chunk at a time, well inside the outbox lease, so the relay never
            # publishes a second copy of an entry our publisher thread still holds.
            publisher.flush(timeout=60)
        infra.wait_for(lambda: not OutboxEntry.objects.exists(), 60, "outbox empty")

    def wait_finished(self, count, timeout):
        from conveyor.core.models import FINISHED_STATUSES, TaskRecord

        infra.wait_for(
            lambda: TaskRecord.objects.filter(status__in=FINISHED_STATUSES).count() >= count,
            timeout,
            f"{count} finished tasks",
            interval=0.1,
        )
        failed = TaskRecord.objects.exclude(status="SUCCESSFUL").count()
        if failed:
            raise RuntimeError(f"{failed} tasks did not end SUCCESSFUL")

    # --- HTTP ----------------------------------------------------------------------
    def request(self, method, path, body=None, token=None, conn=None):
        own = conn is None
        conn = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
        response = conn.getresponse()
        data = response.read()
        if own:
            conn.close()
        return response.status, data

    def get(self, path):
        return self.request("GET", path)

    def create_token(self):
        out = subprocess.run(
            ["python", "manage.py", "create_token", "--name", "bench", "--scope", "write"],
            cwd=infra.ROOT,
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return out.strip().splitlines()[-1]


# --- figures ---------------------------------------------------------------------


def windowed_rate():
    """Tasks/s once every worker was running: from the latest first start among workers to the last finish.

    Workers boot one after another; counting from the very first start would charge
    the later workers' boot time to the throughput.
    """
    from django.db.models import Max, Min

    from conveyor.core.models import TaskRecord

    rows = list(TaskRecord.objects.values_list("worker_ids", "started_at", "finished_at"))
    first_by_worker = {}
    for worker_ids, started, _ in rows:
        worker = worker_ids[-1]
        if worker not in first_by_worker or started < first_by_worker[worker]:
            first_by_worker[worker] = started
    t0 = max(first_by_worker.values())
    end = TaskRecord.objects.aggregate(end=Max("finished_at"))["end"]
    done = sum(1 for _, _, finished in rows if finished >= t0)
    seconds = (end - t0).total_seconds()
    if seconds <= 0 or done < len(rows) * 0.5:
        # Too little left after the last worker started: fall back to the whole run.
        start = TaskRecord.objects.aggregate(start=Min("started_at"))["start"]
        return len(rows) / (end - start).total_seconds(), len(first_by_worker)
    return done / seconds, len(first_by_worker)


def drain(system, cfg, workers):
    count = cfg.n(cfg.drain_messages)
    system.reset()
    system.preload(NOOP, [], count)
    system.start_workers(workers)
    try:
        # CPU per task over the tasks finished once every worker had booted (boot costs CPU too).
        system.wait_ready()
        cpu0, done0 = infra.group_cpu_seconds(system.workers), finished_count()
        system.wait_finished(count, timeout=300)
        cpu_ms = 1000 * (infra.group_cpu_seconds(system.workers) - cpu0) / max(1, count - done0)
        rate, seen = windowed_rate()
        rss = system.worker_rss_mb()
    finally:
        system.stop_workers()
    return {"rate": rate, "cpu_ms": cpu_ms, "workers_seen": seen, "worker_rss_mb": rss, "tasks": count}


def finished_count():
    from conveyor.core.models import FINISHED_STATUSES, TaskRecord

    return TaskRecord.objects.filter(status__in=FINISHED_STATUSES).count()


def wrk_rate(system, path, token, body, cfg):
    """Requests/s answered 2xx by `wrk` at the configured concurrency."""
    seconds = cfg.seconds(cfg.http_seconds)
    script = Path(__file__).parent / "wrk" / "post.lua"
    env = {**system.env, "BENCH_TOKEN": token or "", "BENCH_BODY": json.dumps(body)}
    out = subprocess.run(
        [
            "wrk",
            "-t",
            str(cfg.wrk_threads),
            "-c",
            str(cfg.wrk_connections),
            "-d",
            f"{seconds:.0f}s",
            "-s",
            str(script),
            f"http://127.0.0.1:{system.port}{path}",
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = int(bad.group(1)) if bad else 0
    if errors:
        raise RuntimeError(f"wrk got {errors} non-2xx answers from {path}:\n{out}")
    return rate, total


def http_single(system, cfg, token):
    from bench.models import BaselineRow
    from conveyor.core.models import TaskRecord

    if shutil.which("wrk") is None:
        return None
    system.reset()
    rate, total = wrk_rate(system, "/api/v1/tasks", token, {"task": NOOP}, cfg)
    stored = TaskRecord.objects.count()
    system.reset()
    baseline, baseline_total = wrk_rate(system, "/bench/insert-one", None, {"task": NOOP}, cfg)
    baseline_stored = BaselineRow.objects.count()
    if stored < total or baseline_stored < baseline_total:
        raise RuntimeError(f"answered {total}/{baseline_total} but stored {stored}/{baseline_stored}")
    return {"conveyor": rate, "baseline": baseline, "web_rss_mb": system.web_rss_mb()}


def http_batches(system, cfg, token, clients=2):
    """Tasks/s accepted through POST /api/v1/tasks/batch, `clients` keep-alive clients at once."""
    system.reset()
    requests = max(clients, int(cfg.batch_requests * max(cfg.scale, 0.25)))
    body = {"tasks": [{"task": NOOP} for _ in range(cfg.batch_size)]}
    statuses = []

    def client(n):
        conn = http.client.HTTPConnection("127.0.0.1", system.port, timeout=120)
        for _ in range(n):
            statuses.append(system.request("POST", "/api/v1/tasks/batch", body, token, conn=conn)[0])
        conn.close()

    threads = [threading.Thread(target=client, args=(requests // clients,)) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    if any(status != 202 for status in statuses):
        raise RuntimeError(f"batch answers: {sorted(set(statuses))}")
    return len(statuses) * cfg.batch_size / seconds


def enqueue_rate(system, cfg):
    """Tasks/s through django.tasks' .enqueue() from Django code (this process)."""
    from conveyor.publisher import publisher
    from demo.tasks import noop

    system.reset()
    count = cfg.n(cfg.enqueue_calls)
    start = time.perf_counter()
    for _ in range(count):
        noop.enqueue()
    seconds = time.perf_counter() - start
    publisher.flush(timeout=60)
    return count / seconds


def _percentile(values, fraction):
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def warm_up(system, tasks=200):
    """Run some tasks through freshly started workers before anything is timed.

    Measured: without it the first repetition's slowest tasks are its first ones
    (60-95 ms, once 2.4 s): first connections, first imports, caches filling.
    """
    from demo.tasks import noop

    system.reset()
    for _ in range(tasks):
        noop.enqueue()
    system.wait_finished(tasks, timeout=120)


def latency(system, cfg):
    """enqueue -> start and enqueue -> finish (ms) at a steady rate of .enqueue() calls; workers already up."""
    from conveyor.core.models import TaskRecord
    from demo.tasks import noop

    system.reset()
    seconds = cfg.seconds(cfg.latency_seconds, 2.0)
    count = int(cfg.latency_rate * seconds)
    interval = 1.0 / cfg.latency_rate
    start = time.perf_counter()
    for i in range(count):
        delay = start + i * interval - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        noop.enqueue()
    achieved = count / (time.perf_counter() - start)
    system.wait_finished(count, timeout=120)
    rows = TaskRecord.objects.values_list("enqueued_at", "started_at", "finished_at")
    to_start = [(s - e).total_seconds() * 1000 for e, s, _ in rows]
    to_finish = [(f - e).total_seconds() * 1000 for e, _, f in rows]
    result = {"achieved_rate": achieved, "tasks": count}
    for name, values in (("start", to_start), ("finish", to_finish)):
        result[f"{name}_p50"] = statistics.median(values)
        result[f"{name}_p99"] = _percentile(values, 0.99)
        result[f"{name}_max"] = max(values)
    return result


def scale(system, cfg, processes):
    """sleep(0.1) tasks with `processes` worker processes; throughput against processes x threads / sleep."""
    ideal = processes * cfg.worker_threads / cfg.sleep_seconds
    count = max(processes * cfg.worker_threads * 4, int(ideal * cfg.seconds(cfg.scale_seconds, 1.0)))
    system.reset()
    system.preload(SLEEP, [cfg.sleep_seconds], count)
    system.start_workers(processes)
    try:
        system.wait_finished(count, timeout=300)
        rate, seen = windowed_rate()
    finally:
        system.stop_workers()
    return {"rate": rate, "ideal": ideal, "efficiency": rate / ideal, "tasks": count, "workers_seen": seen}


def workflows(system, cfg):
    """Workflows, workers already up: a chord's fan-in at size, and a chain's cost per step at light load.

    - chord: `chord_members` add(i, 0) members and total, from .enqueue() to the callback
      finished (the workflow's created_at to its finished_at, both written by the database's clock);
    - chain: 10 add steps, submit to last finished; against 10 single tasks a client runs one
      after the other (each enqueued when it sees the previous one finished), the way it
      would without chains. Each repeated `chain_runs` times; the median is reported.
    """
    from conveyor.core.models import TaskRecord
    from conveyor.workflows import chain, chord, group
    from conveyor.workflows.models import Workflow
    from demo.tasks import add, total

    def wait_workflow(workflow_id, timeout=300):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = Workflow.objects.filter(id=workflow_id).values("status", "created_at", "finished_at").get()
            if row["finished_at"] is not None:
                if row["status"] != "SUCCESSFUL":
                    raise RuntimeError(f"workflow {workflow_id} ended {row['status']}")
                return (row["finished_at"] - row["created_at"]).total_seconds() * 1000
            time.sleep(0.002)
        raise TimeoutError(f"workflow {workflow_id} did not finish in {timeout}s")

    def wait_task(task_id, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = TaskRecord.objects.filter(id=task_id).values("status", "finished_at").get()
            if row["finished_at"] is not None:
                return
            time.sleep(0.002)
        raise TimeoutError(f"task {task_id} did not finish in {timeout}s")

    system.reset()
    members = cfg.n(cfg.chord_members, 50)
    chord_ms = wait_workflow(chord(group(add.s(i, 0) for i in range(members)), total.s()).enqueue().id)
    chains, singles = [], []
    for _ in range(cfg.chain_runs):
        chains.append(wait_workflow(chain(add.s(0, 0), *[add.s(1) for _ in range(9)]).enqueue().id))
        began = time.perf_counter()
        for _ in range(10):
            wait_task(add.enqueue(0, 0).id)
        singles.append((time.perf_counter() - began) * 1000)
    chain_ms, singles_ms = statistics.median(chains), statistics.median(singles)
    return {
        "chord_ms": chord_ms,
        "chord_members": members,
        "chain10_ms": chain_ms,
        "singles10_ms": singles_ms,
    }
