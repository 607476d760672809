"""Start Conveyor's services as real processes, the way `make dev` and compose do."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]


class Service:
    def __init__(self, name, command, env, log_dir):
        self.name = name
        self.command = command
        self.env = env
        self.log_path = Path(log_dir) / f"{name}.log"
        self.proc = None

    def start(self):
        self.log = open(self.log_path, "ab")
        # Own session: a signal can reach the whole tree (dramatiq forks its workers).
        self.proc = subprocess.Popen(
            self.command, cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        return self

    def children(self):
        out = subprocess.run(["pgrep", "-g", str(self.proc.pid)], capture_output=True, text=True).stdout
        return [int(pid) for pid in out.split() if int(pid) != self.proc.pid]

    def signal_group(self, sig):
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, timeout=30):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.signal_group(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.signal_group(signal.SIGKILL)
            self.proc.wait(timeout=10)
        # Children (dramatiq's worker processes) may outlive the master briefly.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.children():
            time.sleep(0.1)
        self.signal_group(signal.SIGKILL)
        self.log.close()

    def kill(self):
        self.signal_group(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.log.close()

    def output(self):
        return self.log_path.read_text(errors="replace")


class System:
    """web + N workers + relay, sharing one database and one broker vhost."""

    def __init__(self, env, workers=2, worker_threads=4, relay=True, web=True):
        self.log_dir = tempfile.mkdtemp(prefix="conveyor-e2e-")
        self.port = free_port()
        self.env = {
            **os.environ,
            **env,
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "DJANGO_SETTINGS_MODULE": env.get("DJANGO_SETTINGS_MODULE", "config.settings"),
            "WEB_BIND": f"127.0.0.1:{self.port}",
            "WEB_PROCESSES": "1",
            "WEB_ACCESS_LOG": "",
            "WORKER_THREADS": str(worker_threads),
            "PYTHONUNBUFFERED": "1",
        }
        self.services = {}
        self.workers = []
        if web:
            self.services["web"] = Service("web", ["services/web/start.sh"], self.env, self.log_dir)
        for index in range(workers):
            # Each worker's metrics exporter needs a port (and so a metrics folder) of its own.
            worker_env = {**self.env, "dramatiq_prom_port": str(free_port())}
            worker = Service(f"worker{index + 1}", ["services/worker/start.sh"], worker_env, self.log_dir)
            worker.metrics_port = int(worker_env["dramatiq_prom_port"])
            self.services[worker.name] = worker
            self.workers.append(worker)
        if relay:
            self.services["relay"] = Service("relay", ["services/relay/start.sh"], self.env, self.log_dir)

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout=60):
        for service in self.services.values():
            service.start()
        if "web" in self.services:
            wait_for(lambda: http("GET", f"{self.base_url}/healthz")[0] == 200, timeout, "web /healthz")
        for worker in self.workers:
            wait_for(lambda w=worker: "ready for action" in w.output(), timeout, f"{worker.name} boot")
        return self

    def stop(self):
        for service in self.services.values():
            service.stop()

    def logs(self):
        return "\n".join(f"===== {name}\n{s.output()[-4000:]}" for name, s in self.services.items())


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def http(method, url, body=None, token=None, headers=None, timeout=10):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None, dict(response.headers)
    except urllib.error.HTTPError as err:
        raw = err.read()
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = raw.decode(errors="replace")
        return err.code, payload, dict(err.headers)
