"""One benchmark run: machine limit, peers, Conveyor; one table, one JSON file.

    python -m bench            # what `make bench` runs
    BENCH_SCALE=0.02 BENCH_REPEATS=1 python -m bench   # the smoke test's tiny run

Creates its own vhosts and database, drops them and stops every process it started
at the end, also on an error or Ctrl-C.
"""

import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import time
import traceback
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata, util
from pathlib import Path

from bench import infra, machine, report
from bench.config import Config
from bench.infra import cleanup

RESULTS = Path(os.environ.get("BENCH_RESULTS_DIR", Path(__file__).parent / "results"))


def log(message):
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def machine_info():
    meminfo = Path("/proc/meminfo").read_text().split()
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": int(meminfo[meminfo.index("MemTotal:") + 1]) / 1024 / 1024,
        "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def versions(broker_url):
    import pika

    found = {"python": platform.python_version()}
    for dist in ("django", "dramatiq", "django-dramatiq", "pika", "psycopg", "gunicorn", "celery"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "not installed"
    with pika.BlockingConnection(pika.URLParameters(broker_url)) as conn:
        version = conn._impl.server_properties["version"]
        found["rabbitmq"] = version.decode() if isinstance(version, bytes) else version
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        found["postgresql"] = cursor.fetchone()[0].split()[0]
    if shutil.which("wrk"):
        out = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
        found["wrk"] = (out.stdout + out.stderr).split()[1] if (out.stdout + out.stderr).split() else "?"
    return found


ERRORS = {}


@contextmanager
def guarded(phase, system):
    """One failed repetition is reported and the run goes on: ten minutes of figures are not thrown away."""
    try:
        yield
    except Exception as exc:
        traceback.print_exc()
        ERRORS.setdefault(phase, []).append(f"{type(exc).__name__}: {str(exc)[:300]}")
        system.stop_workers()


class Figures:
    def __init__(self):
        self.runs = {}

    def add(self, key, value):
        self.runs.setdefault(key, []).append(value)

    def summaries(self):
        return {key: s for key, values in self.runs.items() if (s := report.summary(values))}


def main():
    cfg = Config()
    signal.signal(signal.SIGTERM, _interrupt)
    run_id = f"{os.getpid()}_{secrets.token_hex(2)}"
    figures, skipped, counts = Figures(), {}, {}
    result = {"started_at": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine_info()}
    began = time.monotonic()
    try:
        log(f"setting up vhosts and database bench_{run_id}")
        urls = {
            name: infra.create_vhost(f"conveyor-bench-{name}-{run_id}")
            for name in ("machine", "dramatiq", "celery", "durable", "conveyor")
        }
        database_url = infra.create_database(f"conveyor_bench_{run_id}")
        os.environ.update(
            DJANGO_SETTINGS_MODULE="bench.settings",
            DATABASE_URL=database_url,
            BROKER_URL=urls["conveyor"],
            DJANGO_DEBUG="false",
            DJANGO_SECRET_KEY="bench-only-" + secrets.token_hex(20),
            BENCH_CELERY_URL=urls["celery"],
        )
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=infra.ROOT, check=True)
        import django

        django.setup()
        result["versions"] = versions(urls["conveyor"])
        from bench import conveyor_runs
        from bench.peers import drain
        from bench.peers.durable import drain as durable

        try:
            import celery  # noqa: F401
        except ImportError:
            # Both Celery rows (its drain and its CPU per message) carry the reason.
            skipped["celery"] = skipped["cpu.celery"] = (
                "celery not installed: `make bench` installs bench/requirements.txt"
            )
        # The durable peers: Celery storing results with django-celery-results, django-q2.
        for peer, modules in (("celery_results", ("celery", "django_celery_results")), ("django_q", ("django_q",))):
            missing = [module for module in modules if util.find_spec(module) is None]
            if missing:
                skipped[peer] = skipped[f"cpu.{peer}"] = (
                    f"{', '.join(missing)} not installed: `make bench` installs bench/requirements.txt"
                )
        if shutil.which("wrk") is None:
            skipped["submit.http_single"] = skipped["submit.http_baseline"] = (
                "wrk not installed: `make bench` installs it"
            )

        system = conveyor_runs.Conveyor(cfg, database_url, urls["conveyor"], infra.free_port())
        system.start_web_and_relay()
        token = system.create_token()

        # Drains: repetitions interleaved (A B C A B C ...) so a noisy minute hits every contender.
        counts["machine"] = cfg.n(cfg.machine_messages, 200)
        counts["drain"] = cfg.n(cfg.drain_messages)
        durable_db = None
        if cfg.peers and "drains" in cfg.phases and not {"celery_results", "django_q"} <= skipped.keys():
            with guarded("drains", system):
                database = infra.create_database(f"conveyor_bench_durable_{run_id}")
                log(f"migrating the durable peers' database {database.rsplit('/', 1)[1]}")
                durable.migrate(database)
                durable_db = database
        for rep in range(cfg.repeats if "drains" in cfg.phases else 0):
            with guarded("drains", system):
                log(f"drains, repetition {rep + 1}/{cfg.repeats}")
                if cfg.peers:
                    m = machine.run(urls["machine"], cfg)
                    figures.add("machine.publish", m["publish"])
                    figures.add("machine.consume", m["consume"])
                    figures.add("cpu.machine", m["consume_cpu_ms"])
                    rate, cpu_ms = drain.run_dramatiq(urls["dramatiq"], cfg)
                    figures.add("dramatiq.drain", rate)
                    figures.add("cpu.dramatiq", cpu_ms)
                if cfg.peers and "celery" not in skipped:
                    rate, cpu_ms = drain.run_celery(urls["celery"], cfg)
                    figures.add("celery.drain", rate)
                    figures.add("cpu.celery", cpu_ms)
                if durable_db and "celery_results" not in skipped:
                    rate, cpu_ms, ran = durable.run_celery(urls["durable"], durable_db, cfg)
                    figures.add("celery_results.drain", rate)
                    figures.add("cpu.celery_results", cpu_ms)
                    result.setdefault("peer_versions", {})["Celery + django-celery-results"] = ran
                if durable_db and "django_q" not in skipped:
                    rate, cpu_ms, ran = durable.run_django_q(durable_db, cfg)
                    figures.add("django_q.drain", rate)
                    figures.add("cpu.django_q", cpu_ms)
                    result.setdefault("peer_versions", {})["django-q2"] = ran
                for workers in (1, 2):
                    d = conveyor_runs.drain(system, cfg, workers)
                    figures.add(f"conveyor.drain{workers}", d["rate"])
                    figures.add(f"cpu.conveyor{workers}", d["cpu_ms"])
                    if workers == 2:
                        figures.add("memory.worker", d["worker_rss_mb"])
                log(
                    "  "
                    + ", ".join(
                        f"{k} {v[-1]:,.0f}"
                        for k, v in figures.runs.items()
                        if "drain" in k or "machine" in k or "cpu" in k
                    )
                )

        for rep in range(cfg.repeats if "submission" in cfg.phases else 0):
            with guarded("submission", system):
                log(f"submission, repetition {rep + 1}/{cfg.repeats}")
                single = conveyor_runs.http_single(system, cfg, token)
                if single:
                    figures.add("submit.http_single", single["conveyor"])
                    figures.add("submit.http_baseline", single["baseline"])
                figures.add("submit.http_batch", conveyor_runs.http_batches(system, cfg, token))
                figures.add("submit.enqueue", conveyor_runs.enqueue_rate(system, cfg))
        counts["batch_requests"] = max(2, int(cfg.batch_requests * max(cfg.scale, 0.25)))
        counts["enqueue_calls"] = cfg.n(cfg.enqueue_calls)

        if "latency" in cfg.phases:
            log("latency: starting 2 workers")
            system.start_workers(2, wait_ready=True)
            conveyor_runs.warm_up(system)
        try:
            for rep in range(cfg.repeats if "latency" in cfg.phases else 0):
                with guarded("latency", system):
                    log(f"latency, repetition {rep + 1}/{cfg.repeats}")
                    lat = conveyor_runs.latency(system, cfg)
                    for key, value in lat.items():
                        figures.add(f"latency.{key}", value)
                    counts["latency_tasks"] = lat["tasks"]
            for rep in range(cfg.repeats if "latency" in cfg.phases else 0):
                with guarded("workflows", system):
                    log(f"workflows, repetition {rep + 1}/{cfg.repeats}")
                    wf = conveyor_runs.workflows(system, cfg)
                    counts["chord_members"] = wf.pop("chord_members")
                    for key, value in wf.items():
                        figures.add(f"workflow.{key}", value)
        finally:
            system.stop_workers()

        for procs in cfg.scale_processes if "scale" in cfg.phases else ():
            for rep in range(cfg.repeats):
                with guarded("scale", system):
                    log(f"scale, {procs} worker processes, repetition {rep + 1}/{cfg.repeats}")
                    s = conveyor_runs.scale(system, cfg, procs)
                    figures.add(f"scale.{procs}", s["rate"])
                    figures.add(f"scale.efficiency.{procs}", s["efficiency"])
                    counts[f"scale_{procs}_tasks"] = s["tasks"]
        if "growth" in cfg.phases:
            from bench import growth
            from conveyor.core.models import ApiToken

            with guarded("growth", system):
                owner = ApiToken.objects.get(prefix=token[:10]).pk
                found, counts["growth_rows"] = growth.run(system, cfg, token, owner, log)
                for key, value in found.items():
                    figures.add(key, value)
        figures.add("memory.web", system.web_rss_mb())
        # After memory.web, which stays the API's figure: rendering the dashboard loads more code.
        if "dashboard" in cfg.phases:
            from bench import dashboard
            from conveyor.core.models import ApiToken

            with guarded("dashboard", system):
                owner = ApiToken.objects.get(prefix=token[:10]).pk
                result["dashboard"] = found = dashboard.run(system, cfg, owner, log)
                found["web_rss_mb"] = system.web_rss_mb()
                counts["dashboard_rows"] = found["rows"]
                for key, value in dashboard.figures(found).items():
                    figures.add(key, value)
                if found["errors"]:
                    ERRORS.setdefault("dashboard", []).extend(found["errors"])
        if "profile" in cfg.phases:
            from bench import profile

            log("profiling a Conveyor worker and a web process with py-spy")
            with guarded("profile", system):
                result["profile"] = profile.run(system, cfg, token, RESULTS)
    finally:
        log("cleaning up processes, vhosts and database")
        # This process's publisher thread first: deleting its vhost under an open
        # connection makes pika log a reset connection when the thread next wakes up.
        from conveyor.publisher import publisher

        publisher.stop()
        cleanup.run()

    result["machine"]["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    result["created"] = {"process_groups": infra.started_pids, "vhosts": infra.vhosts, "databases": infra.databases}
    result.update(
        config=cfg.as_dict(),
        counts=counts,
        skipped=skipped,
        errors=ERRORS,
        figures=figures.summaries(),
        seconds=round(time.monotonic() - began, 1),
    )
    result["ratios"] = report.ratios(result["figures"], cfg, skipped)
    text = report.table(result)
    print("\n" + text + f"\n\nTook {result['seconds']:.0f} s.")
    stamp = result["started_at"].replace(":", "").replace("+0000", "")
    for path in (RESULTS / f"bench-{stamp}.json", RESULTS / "latest.json"):
        report.write_json(result, path)
    (RESULTS / "latest.txt").write_text(text + "\n")
    log(f"wrote {RESULTS / 'latest.json'}")
    if ERRORS:
        print(f"\nSome repetitions failed (their figures are missing or rest on fewer runs): {ERRORS}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
