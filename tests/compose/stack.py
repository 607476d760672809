"""The compose stack on a private Docker engine, for `make test-compose` (issue 15).

`ComposeStack` starts a dockerd of its own (tests/compose/dockerd.sh), gets every image the
compose file names (the real ones when a registry answers; otherwise the stand-ins of
tests/compose/standins.sh), builds the project's image from the real Dockerfile
(tests/compose/build-image.sh), writes an .env of its own (scripts/generate-env.py, free
loopback ports) and drives the real docker-compose.yml. `destroy()` stops the engine and
removes everything it held: containers, volumes, images, the folder.

Compose v2 (`docker compose`) is used when the client has it. Otherwise Debian's
docker-compose 1.29, which refuses only the top-level `name:` key: it gets a copy of the
file without that line (the project name is passed instead) and never builds (its builder
cannot pass BuildKit secrets): the image is built first and `up` runs with --no-build.
"""

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PROJECT = "conveyor"
# Debian's client: BuildKit without buildx (the docker 28 client on some PATHs needs it).
DOCKER = "/usr/bin/docker"
# Services with images that have no stand-in (not in Debian): started only when pullable.
OPTIONAL = ("grafana", "mailpit")
# What the test runs: the pipeline, its database and broker, and Prometheus.
CORE = ("postgres", "rabbitmq", "migrate", "web", "worker", "relay", "scheduler", "prometheus")
PORTS = ("WEB_PORT", "RABBITMQ_MANAGEMENT_PORT", "PROMETHEUS_PORT", "GRAFANA_PORT", "MAILPIT_PORT")


def run(*args, env=None, check=True, timeout=600):
    """Run a command; on failure, raise with its output (a compose error says what is wrong)."""
    result = subprocess.run(
        [str(a) for a in args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


class ComposeStack:
    def __init__(self, workers=4):
        self.workers = workers
        # Short: the engine's sockets live under it (108-byte limit on unix socket paths).
        self.dir = Path(tempfile.mkdtemp(prefix="cvy-", dir="/tmp"))
        self.engine_dir = self.dir / "engine"
        self.work = self.dir / "work"
        self.work.mkdir()
        self.env = None
        self.figures = {}
        self.services = list(CORE)
        self.left_out = []
        self.stand_ins = []
        self.ports = {}

    # --- engine and images ----------------------------------------------------------
    def start_engine(self):
        began = time.monotonic()
        out = run(HERE / "dockerd.sh", "start", self.engine_dir).stdout
        env = dict(os.environ)
        for line in out.splitlines():
            if line.startswith("export "):
                name, _, value = line[len("export ") :].partition("=")
                env[name] = value
        env["DOCKER"] = DOCKER
        self.env = env
        self.figures["engine start"] = time.monotonic() - began
        self.compose_command = self._compose_command()

    def docker(self, *args, **kwargs):
        return run(DOCKER, *args, env=self.env, **kwargs)

    def prepare_images(self):
        """Stand-ins for what cannot be pulled, the optional services when pullable, the app image."""
        began = time.monotonic()
        before = set(self.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split())
        out = run(HERE / "standins.sh", "all", self.work / "standins", env=self.env, timeout=1200)
        for line in out.stderr.splitlines():
            print(line)
        after = set(self.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split())
        self.stand_ins = sorted(after - before - {"conveyor-test/debian:bookworm"})
        self.figures["stand-ins"] = time.monotonic() - began
        for service in OPTIONAL:
            image = self.image_of(service)
            pulled = self.docker("pull", "-q", image, check=False, timeout=120).returncode == 0
            (self.services if pulled else self.left_out).append(service)
        began = time.monotonic()
        run(HERE / "build-image.sh", self.app_image, env=self.env, timeout=1200)
        self.figures["image build"] = time.monotonic() - began
        size = self.docker("image", "inspect", "-f", "{{.Size}}", self.app_image).stdout
        self.figures["image size MB"] = int(size) / 1e6

    @property
    def app_image(self):
        return "conveyor:local"  # the compose file's default CONVEYOR_IMAGE (the .env keeps it)

    def image_of(self, service):
        return self.config()["services"][service]["image"]

    # --- compose ----------------------------------------------------------------------
    def _compose_command(self):
        if run(DOCKER, "compose", "version", env=self.env, check=False).returncode == 0:
            return [
                DOCKER,
                "compose",
                "--project-name",
                PROJECT,
                "--file",
                ROOT / "docker-compose.yml",
                "--env-file",
                self.work / ".env",
            ]
        if shutil.which("docker-compose") is None:
            raise RuntimeError("needs Compose: `docker compose` (v2) or Debian's docker-compose")
        # 1.29: the same file without its top-level `name:` (the project name says it),
        # with paths resolved from the project's folder as for the real file.
        text = (ROOT / "docker-compose.yml").read_text()
        kept = [line for line in text.splitlines(keepends=True) if not line.startswith("name:")]
        (self.work / "docker-compose.yml").write_text("".join(kept))
        return [
            "docker-compose",
            "--project-name",
            PROJECT,
            "--file",
            self.work / "docker-compose.yml",
            "--project-directory",
            ROOT,
            "--env-file",
            self.work / ".env",
        ]

    def compose(self, *args, **kwargs):
        return run(*self.compose_command, *args, env=self.env, **kwargs)

    def write_env(self):
        """.env from .env.example with generated secrets, and free loopback ports."""
        path = self.work / ".env"
        run("python3", ROOT / "scripts/generate-env.py", "--example", ROOT / ".env.example", "--output", path)
        self.ports = {name: free_port() for name in PORTS}
        lines = [
            line for line in path.read_text().splitlines() if line.split("=", 1)[0] not in {*PORTS, "BIND_ADDRESS"}
        ]
        lines += ["BIND_ADDRESS=127.0.0.1", *(f"{name}={port}" for name, port in self.ports.items())]
        path.write_text("\n".join(lines) + "\n")

    def config(self):
        if not hasattr(self, "_config"):
            self._config = yaml.safe_load(self.compose("config").stdout)
        return self._config

    def up(self):
        began = time.monotonic()
        self.compose("up", "-d", "--no-build", "--scale", f"worker={self.workers}", *self.services, timeout=600)
        return time.monotonic() - began

    # --- containers -------------------------------------------------------------------
    def inspect(self, *ids):
        return json.loads(self.docker("inspect", *ids).stdout) if ids else []

    def containers(self):
        """{service: [inspect data, ...]}: every container of the project (stopped ones too)."""
        ids = self.docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={PROJECT}").stdout.split()
        found = {}
        for data in self.inspect(*ids):
            found.setdefault(data["Config"]["Labels"]["com.docker.compose.service"], []).append(data)
        return found

    def health(self):
        """{container name: health status} of every running container that has a healthcheck."""
        return {
            data["Name"].lstrip("/"): data["State"]["Health"]["Status"]
            for datas in self.containers().values()
            for data in datas
            if data["State"]["Running"] and data["State"].get("Health")
        }

    def wait_healthy(self, timeout=300):
        began = time.monotonic()
        while time.monotonic() - began < timeout:
            health = self.health()
            expected = sum(1 for s in self.services if s != "migrate") + self.workers - 1
            if len(health) >= expected and all(status == "healthy" for status in health.values()):
                return time.monotonic() - began
            if any(status == "unhealthy" for status in health.values()):
                break
            time.sleep(1)
        raise TimeoutError(f"not every container healthy after {time.monotonic() - began:.0f} s: {self.health()}")

    def exec(self, service, *command, **kwargs):
        # -T: no TTY (CI has none).
        return self.compose("exec", "-T", service, *command, **kwargs)

    def volumes(self):
        label = f"label=com.docker.compose.project={PROJECT}"
        return set(self.docker("volume", "ls", "-q", "--filter", label).stdout.split())

    def url(self, port_name, path=""):
        return f"http://127.0.0.1:{self.ports[port_name]}{path}"

    def logs(self, tail=60):
        return self.compose("logs", "--no-color", f"--tail={tail}", check=False).stdout

    # --- the end ------------------------------------------------------------------------
    def destroy(self):
        """Stop the engine (its containers first) and remove its folder: layers, volumes, images."""
        if self.env is not None:
            self.compose("down", "--volumes", "--timeout", "10", check=False, timeout=300)
        run(HERE / "dockerd.sh", "stop", self.engine_dir, check=False, timeout=300)
        shutil.rmtree(self.dir, ignore_errors=True)
