"""Helpers for the observability tests: promtool, a private Prometheus, dashboard queries."""

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
DASHBOARDS_DIR = ROOT / "deploy" / "grafana" / "dashboards"


def require_binary(name):
    """Skip on a laptop without the Debian package; fail in CI, where `make test` installs it."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not installed (scripts/ensure-services.sh prometheus installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def dashboard_queries():
    """[(dashboard title, panel title, expr)] for every query of every panel."""
    found = []
    for path in sorted(DASHBOARDS_DIR.glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                found.append((board["title"], panel["title"], target["expr"]))
    return found


def loopback_config(targets, scrape_interval="1s"):
    """deploy/prometheus/prometheus.yml with every job's discovery replaced by loopback targets.

    `targets` maps job name -> ["127.0.0.1:port", ...]; a job it does not name is dropped.
    Everything else (paths, rule files) stays as deployed.
    """
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"].update(scrape_interval=scrape_interval, evaluation_interval=scrape_interval)
    config["rule_files"] = [str(PROMETHEUS_DIR / pattern) for pattern in config["rule_files"]]
    jobs = []
    for job in config["scrape_configs"]:
        if job["job_name"] not in targets:
            continue
        for key in [k for k in job if k.endswith("_sd_configs") or k == "static_configs"]:
            del job[key]
        job["static_configs"] = [{"targets": targets[job["job_name"]]}]
        jobs.append(job)
    config["scrape_configs"] = jobs
    return config


class Prometheus:
    """Debian's prometheus binary on 127.0.0.1:<port>, with its own temporary data folder."""

    def __init__(self, config, port):
        self.binary = require_binary("prometheus")
        self.port = port
        self.dir = Path(tempfile.mkdtemp(prefix="conveyor-prometheus-"))
        self.config_path = self.dir / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.proc = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        self.log = open(self.dir / "prometheus.log", "ab")
        self.proc = subprocess.Popen(
            [
                self.binary,
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited: {self.output()[-2000:]}")
            time.sleep(0.2)
        raise TimeoutError("prometheus did not become ready")

    def stop(self):
        if self.proc is None:
            return
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def output(self):
        return (self.dir / "prometheus.log").read_text(errors="replace")

    def api(self, path, **params):
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.load(response)
        except urllib.error.HTTPError as err:  # 400/422: a query error, with its message
            return json.load(err)

    def query(self, expr):
        return self.api("query", query=expr)

    def value(self, expr):
        """The single value of an instant query, or None if it has no result."""
        result = self.query(expr)["data"]["result"]
        return float(result[0]["value"][1]) if result else None
