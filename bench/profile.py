"""Where a Conveyor worker spends its time: py-spy on one worker process draining no-op tasks.

BENCH_PHASES=profile runs only this (add it to the list to run it after the others).
py-spy samples the worker process (100 Hz, idle threads left out) while it drains;
the collapsed stacks land in results/worker-profile.txt (open them in speedscope or
flamegraph.pl) and the top functions, by self and by inclusive samples, in
results/worker-profile-top.txt.
"""

import collections
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench import conveyor_runs, infra

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^:]*)(?::\d+)?\)$")


def _short(frame):
    match = FRAME.match(frame)
    if not match:
        return frame
    path = match["file"]
    for marker in ("site-packages/", "wt-bench/", "/lib/python3.12/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match['func']} ({path})"


def summarise(collapsed_text, top=25):
    self_counts, inclusive, total = collections.Counter(), collections.Counter(), 0
    for line in collapsed_text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        count = int(count)
        frames = [_short(f) for f in stack.split(";")]
        # The first frame is the thread's name (py-spy); keep only code frames.
        frames = [f for f in frames if "(" in f]
        if not frames:
            continue
        total += count
        self_counts[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count

    def pct(counter):
        return [(round(100 * n / total, 1), frame) for frame, n in counter.most_common(top)]

    return {"samples": total, "self": pct(self_counts), "inclusive": pct(inclusive)}


def _spy_bin():
    return shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")


class Recording:
    """py-spy --gil on one process, plus its CPU time, around a block of work."""

    def __init__(self, pid, raw_path):
        self.pid, self.raw = pid, raw_path

    def __enter__(self):
        self.raw.parent.mkdir(parents=True, exist_ok=True)
        self.spy = subprocess.Popen(
            # --gil: only samples of the thread holding the GIL, i.e. where the process's
            # CPU goes; waits on PostgreSQL and RabbitMQ (outside the GIL) do not show.
            [
                _spy_bin(),
                "record",
                "--pid",
                str(self.pid),
                "--rate",
                "100",
                "--gil",
                "--format",
                "raw",
                "--output",
                str(self.raw),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        infra.cleanup.add(f"py-spy {self.spy.pid}", lambda: self.spy.poll() is None and self.spy.kill())
        self.cpu, self.wall = infra.cpu_seconds(self.pid), time.monotonic()
        return self

    def __exit__(self, *exc):
        self.cpu_used, self.wall_used = infra.cpu_seconds(self.pid) - self.cpu, time.monotonic() - self.wall
        self.spy.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        self.spy.wait(timeout=60)

    def summary(self, what, count, rate, results_dir, name):
        summary = (
            summarise(self.raw.read_text()) if self.raw.exists() else {"error": self.spy.stderr.read().decode()[-500:]}
        )
        summary.update(rate=rate, cpu_ms_per_task=1000 * self.cpu_used / count, cpu_busy=self.cpu_used / self.wall_used)
        lines = [
            f"py-spy --gil on {what}: {count} tasks ({rate:.0f}/s while sampled), {summary.get('samples')} "
            f"samples; the process used {summary['cpu_ms_per_task']:.2f} ms CPU per task and was busy "
            f"{100 * summary['cpu_busy']:.0f}% of the time"
        ]
        for kind in ("self", "inclusive"):
            lines.append(f"\n{kind} time, top functions:")
            lines += [f"  {p:5.1f}%  {frame}" for p, frame in summary.get(kind, [])]
        (results_dir / f"{name}-profile-top.txt").write_text("\n".join(lines) + "\n")
        print("\n".join(lines) + "\n", flush=True)
        return summary


def worker_drain(system, cfg, results_dir):
    """One worker process (x worker_threads) draining preloaded no-op tasks."""
    count = cfg.n(cfg.drain_messages)
    system.reset()
    system.preload(conveyor_runs.NOOP, [], count)
    system.start_workers(1)
    worker = system.workers[0]
    try:
        # Sample from "ready for action" on, so Django's and Dramatiq's imports stay out.
        system.wait_ready()
        done_before = conveyor_runs.finished_count()
        with Recording(worker.children()[0], results_dir / "worker-profile.txt") as rec:
            system.wait_finished(count, timeout=600)
        count -= done_before
        rate, _ = conveyor_runs.windowed_rate()
    finally:
        system.stop_workers()
    what = f"one worker process x {cfg.worker_threads} threads draining no-op tasks"
    return rec.summary(what, count, rate, results_dir, "worker")


def web_single(system, cfg, token, results_dir):
    """Both gunicorn worker processes under wrk, POST /api/v1/tasks one task per request (one is sampled)."""
    from conveyor.core.models import TaskRecord

    system.reset()
    pid = system.web.children()[0]
    with Recording(pid, results_dir / "web-profile.txt") as rec:
        rate, total = conveyor_runs.wrk_rate(system, "/api/v1/tasks", token, {"task": conveyor_runs.NOOP}, cfg)
    # Each of the web processes took about half of the requests.
    count = max(1, TaskRecord.objects.count() // len(system.web.children()))
    what = f"one of {len(system.web.children())} web processes under wrk -c{cfg.wrk_connections}, one task per request"
    return rec.summary(what, count, rate, results_dir, "web")


def run(system, cfg, token, results_dir):
    if _spy_bin() is None:
        return {"skipped": "py-spy not installed: `make bench` installs bench/requirements.txt"}
    return {"worker": worker_drain(system, cfg, results_dir), "web": web_single(system, cfg, token, results_dir)}
