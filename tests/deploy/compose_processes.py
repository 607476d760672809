"""Run compose services as local processes: the command and environment compose would
give each container, with what a container has of its own mapped onto this machine.

Mapping, and nothing else:
- image environment: the final stage's ENV lines of the Dockerfile (PATH's /opt/venv is
  this virtualenv; /app, the image's WORKDIR, is the repository);
- service host names: postgres -> the test database, rabbitmq -> the local broker with
  guest on the session's test vhost, any other service name -> 127.0.0.1;
- published ports: the host port compose publishes, or a free one if it is taken;
  "0.0.0.0" inside a container is 127.0.0.1 here;
- file system: a named volume is one folder shared by the replicas that mount it; other
  absolute paths are the image's (one folder per run); each replica has its own /tmp
  (TMPDIR), as each container has.
"""

import os
import re
import socket
import sys
from pathlib import Path
from urllib.parse import urlsplit

from tests.deploy import compose
from tests.deploy.compose import ROOT
from tests.support.ports import free_port

VENV = Path(sys.executable).parent.parent


def port_free(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def image_environment():
    env = {}
    for instruction, args in compose.dockerfile_stages()[-1][1]:
        if instruction == "ENV":
            for name, value in re.findall(r"(\w+)=(\S+)", args):
                env[name] = value.replace("/opt/venv", str(VENV)).replace("$PATH", os.environ["PATH"])
    return env


class Replica:
    def __init__(self, service, index, command, env, healthcheck):
        self.service, self.index, self.command, self.env, self.healthcheck = service, index, command, env, healthcheck

    @property
    def name(self):
        return f"{self.service}{self.index}"


class ComposeHost:
    def __init__(self, resolved, database_url, broker_url, workdir):
        self.compose = resolved
        self.services = resolved["services"]
        self.database_url, self.broker_url = database_url, broker_url
        self.workdir = Path(workdir)
        self.image_root = self.workdir / "image"
        self.published = {}  # (service, container port) -> host port

    def host_port(self, service, container_port):
        key = (service, container_port)
        if key not in self.published:
            wanted = None
            for spec in self.services[service].get("ports") or []:
                parts = str(spec).split(":")
                if parts[-1].split("/")[0] == str(container_port):
                    wanted = int(parts[-2])
            self.published[key] = wanted if wanted and port_free(wanted) else free_port()
        return self.published[key]

    def map_path(self, service, path, tmp):
        if path == "/tmp" or path.startswith("/tmp/"):
            return str(tmp / path[5:])
        for volume in self.services[service].get("volumes") or []:
            source, target = str(volume).split(":")[:2]
            if not source.startswith((".", "/")) and (path == target or path.startswith(target + "/")):
                return str(self.workdir / "volumes" / source / path[len(target) :].lstrip("/"))
        if path.startswith("/app/") and (ROOT / path[5:]).exists():
            return str(ROOT / path[5:])
        return str(self.image_root / path.lstrip("/"))

    def map_value(self, service, value, tmp):
        parts = urlsplit(value) if "://" in value else None
        if parts and parts.hostname == "postgres":
            return self.database_url
        if parts and parts.hostname == "rabbitmq":
            return self.broker_url
        if value in self.services:
            return "127.0.0.1"
        match = re.fullmatch(r"0\.0\.0\.0:(\d+)", value)
        if match:
            return f"127.0.0.1:{self.host_port(service, int(match[1]))}"
        if value.startswith("/"):
            return self.map_path(service, value, tmp)
        return value

    def map_healthcheck(self, service, test):
        def ports(text):
            return re.sub(r"127\.0\.0\.1:(\d+)", lambda m: f"127.0.0.1:{self.host_port(service, int(m[1]))}", text)

        kind, *rest = test
        if kind == "CMD-SHELL":
            return ["sh", "-c", ports(rest[0])]
        return [ports(part) for part in rest]

    def replica(self, service, index=1):
        svc = self.services[service]
        tmp = self.workdir / "tmp" / f"{service}{index}"
        tmp.mkdir(parents=True, exist_ok=True)
        env = {"PATH": os.environ["PATH"], "HOME": str(tmp), **image_environment(), "TMPDIR": str(tmp)}
        for name, value in compose.environment(svc).items():
            if value is not None:
                env[name] = self.map_value(service, value, tmp)
        command = svc["command"] if isinstance(svc["command"], list) else svc["command"].split()
        healthcheck = self.map_healthcheck(service, svc["healthcheck"]["test"]) if svc.get("healthcheck") else None
        return Replica(service, index, list(command), env, healthcheck)
