"""A quick look at one Conveyor drain with per-process CPU: `python -m bench.probe [tasks] [workers]`.

Not part of `make bench`: for checking a change to the worker's hot path in a minute.
Prints the drain rate, CPU per task of the workers, and how busy the machine and its
servers (PostgreSQL, RabbitMQ) were during the drain.
"""

import collections
import os
import secrets
import subprocess
import sys
import threading
import time

from bench import infra
from bench.config import Config


def _cpu_by_name():
    per = collections.Counter()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = open(f"/proc/{pid}/stat").read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        per[name] += int(fields[11]) + int(fields[12])
    cpu = open("/proc/stat").readline().split()[1:]
    return per, sum(map(int, cpu)), int(cpu[3]) + int(cpu[4])


def main():
    tasks = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    cfg = Config()
    run_id = f"{os.getpid()}_{secrets.token_hex(2)}"
    vhost = f"conveyor-probe-{run_id}"
    url = infra.create_vhost(vhost)
    database_url = infra.create_database(f"conveyor_probe_{run_id}")
    os.environ.update(
        DJANGO_SETTINGS_MODULE="bench.settings",
        DATABASE_URL=database_url,
        BROKER_URL=url,
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY="probe-" + secrets.token_hex(20),
    )
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=infra.ROOT, check=True)
    import django

    django.setup()
    from django.db import connection

    from bench import conveyor_runs

    if os.environ.get("PROBE_SQL"):  # try a schema change: PROBE_SQL="DROP INDEX ...; ..."
        with connection.cursor() as cursor:
            cursor.execute(os.environ["PROBE_SQL"])

    system = conveyor_runs.Conveyor(cfg, database_url, url, infra.free_port())
    try:
        system.start_web_and_relay()
        system.reset()
        if os.environ.get("PROBE_FILL"):  # finished rows already in the table, as bench.growth writes them
            from bench import growth

            growth.fill(int(os.environ["PROBE_FILL"]), None)
        from django.db.models import Max

        from conveyor.core.models import TaskRecord

        # The drained tasks are those enqueued after the filler rows: found by index, so
        # polling for the end does not scan the filler rows (it would load PostgreSQL).
        mark = TaskRecord.objects.aggregate(latest=Max("enqueued_at"))["latest"]
        fresh = TaskRecord.objects.filter(enqueued_at__gt=mark) if mark else TaskRecord.objects.all()
        system.preload(conveyor_runs.NOOP, [], tasks)
        system.start_workers(workers)
        system.wait_ready()
        before, t0, idle0 = _cpu_by_name()
        done0 = fresh.filter(finished_at__isnull=False).count()
        cpu0, w0 = infra.group_cpu_seconds(system.workers), time.monotonic()
        infra.wait_for(lambda: fresh.filter(status="SUCCESSFUL").count() >= tasks, 600, "the drain", interval=0.2)
        wall = time.monotonic() - w0
        after, t1, idle1 = _cpu_by_name()
        cpu_ms = 1000 * (infra.group_cpu_seconds(system.workers) - cpu0) / max(1, tasks - done0)
        from django.db.models import Min

        span = fresh.aggregate(start=Min("started_at"), end=Max("finished_at"))
        rate = fresh.count() / (span["end"] - span["start"]).total_seconds()
        print(f"drain {rate:,.0f} tasks/s with {workers} workers; workers' CPU {cpu_ms:.3f} ms/task")
        print(f"machine busy {100 * (1 - (idle1 - idle0) / (t1 - t0)):.0f}% over {wall:.1f}s")
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'conveyor_taskrecord'"
            )
            print("task table updates, HOT updates:", cursor.fetchone())
        used = {k: (after[k] - before.get(k, 0)) / 100 / wall for k in after}
        for name, cores in sorted(used.items(), key=lambda x: -x[1])[:8]:
            print(f"  {name:24s} {cores:.2f} cores, {1000 * cores * wall / max(1, tasks - done0):.3f} ms/task")
    finally:
        from conveyor.publisher import publisher

        publisher.stop()
        infra.cleanup.run()


if __name__ == "__main__":
    threading.current_thread().name = "probe"
    main()
