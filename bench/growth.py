"""How cost grows with the task table: the drain and the task list with a million finished rows.

A durable record per task means the table grows by a row per task until the purge
(CONVEYOR_TASK_RETENTION_DAYS) removes old ones. The worker's statements go by primary
key and the list by index, so neither should slow down as the table grows; this measures
it. BENCH_GROWTH_ROWS (1,000,000 at BENCH_SCALE=1) finished rows, owned by the token the
list is read with, are written by one INSERT ... SELECT from generate_series, then:

- the drain of BENCH_SCALE x 5,000 no-op tasks with 2 worker processes, timed from the
  drained tasks' own rows (the filler rows are never read);
- GET /api/v1/tasks p50 and p99 (the first page, 50 tasks, newest first, as a non-admin
  token sees it: its own tasks) and GET /api/v1/tasks?status=FAILED p99, over
  sequential requests;

and the same two figures on an empty table, in the same run.
"""

import http.client
import json
import statistics
import time

from bench import infra

NOOP = "demo.tasks.noop"
STATUSES = ("SUCCESSFUL", "SUCCESSFUL", "SUCCESSFUL", "SUCCESSFUL", "SUCCESSFUL", "SUCCESSFUL", "SUCCESSFUL", "FAILED")


def fill(rows, owner_id):
    """`rows` finished tasks (7 in 8 SUCCESSFUL, 1 in 8 FAILED) enqueued over the last 30 days."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO conveyor_taskrecord (
                id, task_path, queue_name, priority, args, kwargs, status, status_group, attempts,
                return_value, errors, dropped_errors, failure_reason, enqueued_at, started_at,
                last_attempted_at, finished_at, worker_ids, owner_id, source, backend, worker_deaths, retries)
            SELECT gen_random_uuid(), 'demo.tasks.noop', 'default', 0, '[]', '{}', s.status, s.status, 1,
                'null', '[]', 0, '', s.at, s.at, s.at, s.at + interval '5 ms', '["filler"]', %s, 'api',
                'default', 0, 0
            FROM (
                SELECT (%s::text[])[1 + i %% 8] AS status, now() - (i * interval '2.5 s') AS at
                FROM generate_series(1, %s) AS i
            ) AS s
            """,
            [owner_id, list(STATUSES), rows],
        )
        cursor.execute("VACUUM ANALYZE conveyor_taskrecord")
        # Write the fill's dirty pages out now: otherwise the checkpointer and the kernel's
        # writeback flush hundreds of MB during the drain that follows, and the figure would
        # measure the aftermath of a bulk load, not a table that has a million rows.
        cursor.execute("CHECKPOINT")


def list_latency(system, token, path, requests):
    """Milliseconds per sequential GET of `path`: (p50, p99)."""
    conn = http.client.HTTPConnection("127.0.0.1", system.port, timeout=60)
    times = []
    try:
        for _ in range(requests):
            started = time.perf_counter()
            conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
            response = conn.getresponse()
            body = response.read()
            times.append((time.perf_counter() - started) * 1000)
            if response.status != 200:
                raise RuntimeError(f"GET {path} answered {response.status}: {body[:200]!r}")
        json.loads(body)
    finally:
        conn.close()
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.99 * len(times)))]


def drain(system, cfg, workers=2):
    """Drain rate of freshly preloaded no-op tasks, from their own rows only; and CPU per task."""
    from django.db.models import Max, Min

    from conveyor.core.models import TaskRecord

    count = cfg.n(cfg.drain_messages)
    mark = TaskRecord.objects.aggregate(latest=Max("enqueued_at"))["latest"]
    system.preload(NOOP, [], count)
    fresh = TaskRecord.objects.filter(enqueued_at__gt=mark) if mark else TaskRecord.objects.all()
    system.start_workers(workers)
    try:
        system.wait_ready()
        cpu0 = infra.group_cpu_seconds(system.workers)
        infra.wait_for(
            lambda: fresh.filter(status="SUCCESSFUL").count() >= count, 300, f"{count} drained tasks", interval=0.2
        )
        cpu_ms = 1000 * (infra.group_cpu_seconds(system.workers) - cpu0) / count
        span = fresh.aggregate(start=Min("started_at"), end=Max("finished_at"))
        rate = count / (span["end"] - span["start"]).total_seconds()
    finally:
        system.stop_workers()
    return rate, cpu_ms


def run(system, cfg, token_secret, token_id, log):
    """{figure: value} for the empty table and for the table with the filler rows."""
    rows = int(1_000_000 * cfg.scale) if cfg.growth_rows is None else cfg.growth_rows
    requests = max(20, int(200 * min(1.0, cfg.scale)))
    figures = {}
    for label in ("empty", "full"):
        system.reset()
        if label == "full":
            log(f"growth: writing {rows:,} finished task rows")
            started = time.monotonic()
            fill(rows, token_id)
            log(f"growth: {rows:,} rows written in {time.monotonic() - started:.0f} s")
        figures[f"growth.list_p50.{label}"], figures[f"growth.list_p99.{label}"] = list_latency(
            system, token_secret, "/api/v1/tasks?limit=50", requests
        )
        figures[f"growth.failed_p99.{label}"] = list_latency(
            system, token_secret, "/api/v1/tasks?limit=50&status=FAILED", requests
        )[1]
        figures[f"growth.drain.{label}"], figures[f"growth.cpu.{label}"] = drain(system, cfg)
        log(f"growth ({label}): " + ", ".join(f"{k} {v:,.2f}" for k, v in figures.items() if k.endswith(label)))
    system.reset()
    return figures, rows
