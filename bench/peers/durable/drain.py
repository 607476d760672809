"""Drain N no-op tasks through each durable peer and time it from their database.

Like Conveyor's drain (bench.conveyor_runs.drain): N tasks are preloaded with the workers
stopped (by bench.peers.durable.load, a subprocess with the peers' settings), then the
workers start and this process counts the finished tasks in the peer's own tables with
plain SQL (it has Conveyor's Django settings loaded, not the peers'):

- Celery + django-celery-results: rows of django_celery_results_taskresult with status
  SUCCESS, finished at date_done (written by the worker process after the task);
- django-q2: rows of django_q_task with success true (its Success proxy model), finished
  at `stopped` (the row itself is written later by the cluster's monitor process).

Rate: the tasks finished after the first one, over the time from the first finish to the
moment this process saw the last one's row (polling every 50 ms). CPU per task: CPU time
of the peer's whole process group (main process, forked workers, django-q2's sentinel,
pusher and monitor) from the first poll that saw a finished task to the one that saw all
N, divided by the tasks finished in between.
"""

import json
import logging
import subprocess
import sys
import time
from datetime import UTC, datetime

import pika
import psycopg

from bench import infra
from bench.peers.drain import PEER_ENV_DROP, depth

SETTINGS = "bench.peers.durable.settings"
QUEUE = "bench"  # bench.peers.durable.celery_app.QUEUE
TABLES = ("django_celery_results_taskresult", "django_q_task", "django_q_ormq")
FINISHED = {
    "celery": (
        "SELECT count(*) FILTER (WHERE status = 'SUCCESS'), count(*) FILTER (WHERE status = 'FAILURE'),"
        " min(date_done) FILTER (WHERE status = 'SUCCESS'), max(date_done) FILTER (WHERE status = 'SUCCESS')"
        " FROM django_celery_results_taskresult"
    ),
    "django_q": (
        "SELECT count(*) FILTER (WHERE success), count(*) FILTER (WHERE NOT success),"
        " min(stopped) FILTER (WHERE success), max(stopped) FILTER (WHERE success) FROM django_q_task"
    ),
}


def env(database_url, broker_url=""):
    """A peer process's environment: the peers' settings and database, none of Conveyor's."""
    # python_env drops PEER_ENV_DROP after adding its extras: the peers' own values go in after.
    return {
        **infra.python_env(PEER_ENV_DROP),
        "DJANGO_SETTINGS_MODULE": SETTINGS,
        "BENCH_DURABLE_DATABASE_URL": database_url,
        "BENCH_DURABLE_CELERY_URL": broker_url,
    }


def migrate(database_url, python=sys.executable):
    """Apply django-celery-results' and django-q2's migrations to the peers' database."""
    subprocess.run(
        [python, "-m", "django", "migrate", "--noinput", "-v0"],
        cwd=infra.ROOT,
        env=env(database_url),
        check=True,
        timeout=300,
    )


def reset(database_url, broker_url=None):
    """Empty the peers' tables (and the Celery queue), so no repetition inherits a backlog."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {', '.join(TABLES)}")
    if broker_url:
        pika_log = logging.getLogger("pika")
        level, pika_log.level = pika_log.level, logging.CRITICAL  # a queue not declared yet is fine
        try:
            with pika.BlockingConnection(pika.URLParameters(broker_url)) as conn:
                try:
                    conn.channel().queue_purge(QUEUE)
                except pika.exceptions.ChannelClosedByBroker:
                    pass
        finally:
            pika_log.level = level


def load(peer, count, environment, python=sys.executable):
    """Enqueue `count` no-op tasks with the peer's own client; the versions that ran."""
    out = subprocess.run(
        [python, "-m", "bench.peers.durable.load", peer, str(count)],
        cwd=infra.ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if out.returncode:
        raise RuntimeError(f"loading {peer} failed: {(out.stdout + out.stderr)[-1500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def time_drain(database_url, peer, count, start_workers, timeout, stop_timeout=20):
    with psycopg.connect(database_url, autocommit=True) as conn:
        workers = start_workers()
        try:
            deadline = time.monotonic() + timeout
            cpu_before, done_before, idle_cpu = None, 0, infra.group_cpu_seconds([workers])
            while True:
                done, failed, first, last = conn.execute(FINISHED[peer]).fetchone()
                seen, cpu = datetime.now(UTC), infra.group_cpu_seconds([workers])
                if failed:
                    raise RuntimeError(f"{failed} {peer} tasks failed (see {workers.log_path})")
                if cpu_before is None:
                    if done >= count:
                        # All done within one poll (a tiny run): count from the last empty look.
                        cpu_before, done_before = idle_cpu, 0
                    elif done:
                        cpu_before, done_before = cpu, done
                    else:
                        idle_cpu = cpu
                if done >= count:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{peer}: {done} of {count} tasks finished in {timeout}s")
                if workers.proc.poll() is not None:
                    raise RuntimeError(f"{peer} workers exited: {workers.output()[-1000:]}")
                time.sleep(0.05)
        finally:
            # The figures are taken: no need to wait long for a graceful shutdown.
            workers.stop(timeout=stop_timeout)
    # The last task counts as finished when its row was in the database: the poll that saw
    # it (django-q2's monitor stores a row up to seconds after the worker's `stopped`).
    seconds = (max(last, seen) - first).total_seconds()
    return (count - 1) / seconds, 1000 * (cpu - cpu_before) / max(1, count - done_before)


def run_celery(broker_url, database_url, cfg, processes=2, python=sys.executable):
    """Celery, prefork x `processes`, results in PostgreSQL: (tasks/s, CPU ms per task, versions)."""
    count = cfg.n(cfg.drain_messages)
    environment = env(database_url, broker_url)
    reset(database_url, broker_url)
    versions = load("celery", count, environment, python)
    with pika.BlockingConnection(pika.URLParameters(broker_url)) as conn:
        infra.wait_for(lambda: depth(conn.channel(), QUEUE) >= count, 60, f"{count} messages on {QUEUE}")

    def start():
        return infra.Process(
            "celery-durable",
            [
                python,
                "-m",
                "celery",
                "-A",
                "bench.peers.durable.celery_app",
                "worker",
                "--pool",
                "prefork",
                "--concurrency",
                str(processes),
                "--queues",
                QUEUE,
                "--loglevel",
                "WARNING",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--hostname",
                "durable@%h",
            ],
            environment,
        )

    rate, cpu_ms = time_drain(database_url, "celery", count, start, timeout=600)
    return rate, cpu_ms, versions


def run_django_q(database_url, cfg, python=sys.executable):
    """django-q2, ORM broker, 2 workers (Q_CLUSTER in the peers' settings): (tasks/s, CPU ms, versions)."""
    count = cfg.n(cfg.drain_messages)
    environment = env(database_url)
    reset(database_url)
    versions = load("django_q", count, environment, python)

    def start():
        return infra.Process("django-q", [python, "-m", "django", "qcluster"], environment)

    # stop_timeout: on SIGTERM to its process group the cluster waits out its own timeouts.
    rate, cpu_ms = time_drain(database_url, "django_q", count, start, timeout=600, stop_timeout=3)
    return rate, cpu_ms, versions
