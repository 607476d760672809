"""The benchmark's own RabbitMQ vhosts, PostgreSQL database and processes, and their cleanup.

Everything created here is registered with `Cleanup` the moment it exists, so an error
or Ctrl-C half way still drops the vhosts and the database and stops every process
group the run started (by its id; nothing else is touched).
"""

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

# The benchmark starts its servers on ports picked the same way the tests pick them.
from tests.support.ports import free_port  # noqa: F401 (used as infra.free_port)

ROOT = Path(__file__).resolve().parent.parent
RABBIT_HOST = os.environ.get("BENCH_RABBITMQ_HOST", "127.0.0.1:5672")
PG_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")


class Cleanup:
    def __init__(self):
        self.actions = []

    def add(self, what, action):
        self.actions.append((what, action))

    def run(self):
        while self.actions:
            what, action = self.actions.pop()
            try:
                action()
            except Exception as exc:  # keep cleaning the rest
                print(f"cleanup of {what} failed: {exc}", file=sys.stderr)


cleanup = Cleanup()
started_pids = []  # every process group this run started (in the JSON, so a test can check they are gone)
vhosts, databases = [], []


def _rabbitmqctl(*args, check=True):
    return subprocess.run(["rabbitmqctl", "-q", *args], check=check, capture_output=True, text=True, timeout=60)


def create_vhost(name):
    _rabbitmqctl("add_vhost", name)
    vhosts.append(name)
    cleanup.add(f"vhost {name}", lambda: _rabbitmqctl("delete_vhost", name, check=False))
    _rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    return f"amqp://guest:guest@{RABBIT_HOST}/{name}"


def create_database(name):
    with psycopg.connect(f"{PG_URL}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    databases.append(name)
    cleanup.add(f"database {name}", lambda: drop_database(name))
    return f"{PG_URL}/{name}"


def drop_database(name):
    from django.db import connections

    connections.close_all()
    with psycopg.connect(f"{PG_URL}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Process:
    """One command in its own session, so the whole tree (forked workers) stops together."""

    log_dir = Path(tempfile.mkdtemp(prefix="conveyor-bench-"))

    def __init__(self, name, command, env):
        self.name = name
        self.log_path = self.log_dir / f"{name}.log"
        self.log = open(self.log_path, "ab")
        # A later process of the same name appends to the same log (to keep every run's
        # output for a post-mortem); output() reads only this process's part, so waiting for
        # "ready for action" does not see the previous repetition's line.
        self.log_offset = self.log.tell()
        self.proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        started_pids.append(self.proc.pid)
        cleanup.add(f"process group {self.proc.pid} ({name})", self.stop)

    @property
    def pid(self):
        return self.proc.pid

    def group(self):
        out = subprocess.run(["pgrep", "-g", str(self.proc.pid)], capture_output=True, text=True).stdout
        return [int(pid) for pid in out.split()]

    def children(self):
        """Direct children of the main process (gunicorn's and dramatiq's worker processes)."""
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
        return [int(pid) for pid in out.split()]

    def output(self):
        with open(self.log_path, "rb") as log:
            log.seek(self.log_offset)
            return log.read().decode(errors="replace")

    def _signal(self, sig):
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, timeout=20):
        if self.proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and self.group():
            time.sleep(0.05)
        self._signal(signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.wait(timeout=10)
        if not self.log.closed:
            self.log.close()
        cleanup.actions = [(w, a) for w, a in cleanup.actions if a != self.stop]


def cpu_seconds(pid):
    """User + system CPU time of a process so far (from /proc/<pid>/stat); 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def group_cpu_seconds(processes):
    """CPU time so far of every live process in these processes' groups (CPU per task is
    robust to a busy machine where wall-clock rates are not)."""
    return sum(cpu_seconds(pid) for process in processes for pid in process.group())


def rss_mb(pid):
    """Resident memory of one process, in MB (VmRSS from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def wait_for(predicate, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception as exc:
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what} (last error: {last_error})")


def python_env(_without=(), **extra):
    """The environment for a child Python process of the benchmark (minus `_without`)."""
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "PYTHONUNBUFFERED": "1",
    }
    env.update({k: str(v) for k, v in extra.items()})
    for name in _without:
        env.pop(name, None)
    return env
