"""Start scheduler replicas as real processes against the test database."""

import os
import sys
import tempfile
import urllib.request
from pathlib import Path

from django.db import connection
from prometheus_client.parser import text_string_to_metric_families

from tests.support.processes import Service, free_port


def database_url():
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


class Scheduler(Service):
    def __init__(self, name, log_dir=None, **env):
        log_dir = log_dir or tempfile.mkdtemp(prefix="conveyor-scheduler-")
        self.metrics_port = free_port()
        self.heartbeat_file = str(Path(log_dir) / f"{name}.heartbeat")
        super().__init__(
            name,
            ["services/scheduler/start.sh"],
            {
                **os.environ,
                "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
                "DJANGO_SETTINGS_MODULE": "config.settings",
                "DATABASE_URL": database_url(),
                "PYTHONUNBUFFERED": "1",
                "SCHEDULER_METRICS_PORT": str(self.metrics_port),
                "SCHEDULER_HEARTBEAT_FILE": self.heartbeat_file,
                **env,
            },
            log_dir,
        )

    def metrics(self):
        """{(name, labels...): value} scraped from the process's own /metrics."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2) as response:
            text = response.read().decode()
        values = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                values[(sample.name, *sorted(sample.labels.items()))] = sample.value
        return values

    def is_leader(self):
        try:
            return self.metrics()[("conveyor_scheduler_is_leader",)] == 1
        except Exception:
            return False

    def heartbeat(self):
        import json

        return json.loads(Path(self.heartbeat_file).read_text())


def leaders(*schedulers):
    return [s for s in schedulers if s.is_leader()]
