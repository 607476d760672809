"""Every variable the services read is set in compose and in .env.example, and compose
sets nothing that nothing reads (a typo there is a setting silently ignored)."""

import importlib.util
import re
from pathlib import Path

import pytest

from tests.deploy import compose
from tests.deploy.compose import ROOT

# Read by every process through settings (and the shared code it imports).
SHARED_CODE = [ROOT / "config", ROOT / "conveyor", ROOT / "demo"]
# What each app service runs besides the shared code: its folder under services/ and
# the config files its start script names.
SERVICE_CODE = {
    "web": [ROOT / "services/web"],
    "worker": [ROOT / "services/worker"],
    "relay": [ROOT / "services/relay"],
    "scheduler": [ROOT / "services/scheduler"],
    "migrate": [],
}
# Paths fixed by the image's layout (Dockerfile); compose sets them literally and
# .env.example names them in a comment instead of offering them as knobs.
IMAGE_LAYOUT = {
    "CONVEYOR_DATA_DIR",
    "DJANGO_STATIC_ROOT",
    "DJANGO_MEDIA_ROOT",
    "DJANGO_EMAIL_FILE_PATH",
    "WEB_BIND",
    "SCHEDULER_HEARTBEAT_FILE",
    "SCHEDULER_METRICS_HOST",
}
# Built by compose from other .env lines (user, password, host, database or vhost).
COMPOSED = {"DATABASE_URL", "BROKER_URL", "RABBITMQ_MANAGEMENT_URL"}
# Read by a library, not by our code: {variable: package whose source must read it}.
LIBRARY_READS = {
    "dramatiq_prom_port": "dramatiq",
    "dramatiq_prom_host": "dramatiq",
    "dramatiq_prom_db": "dramatiq",
    "PROMETHEUS_MULTIPROC_DIR": "prometheus_client",
    "dramatiq_queue_prefetch": "dramatiq",
}
# Given a per-container default by the start scripts themselves (metrics folders under
# the container's own /tmp, the exporter's port): compose may set them, need not.
START_SCRIPT_DEFAULTS = {
    "PROMETHEUS_MULTIPROC_DIR",
    "TMPDIR",
    "dramatiq_prom_port",
    "dramatiq_prom_host",
    "dramatiq_prom_db",
}
# Interpolated by the Makefile rather than compose.
MAKEFILE_READS = {"WORKERS"}


def reads_in(paths):
    names = set()
    for base in paths:
        files = [base] if base.is_file() else sorted(base.rglob("*")) if base.exists() else []
        for path in files:
            if path.suffix == ".py" and "migrations" not in path.parts:
                names |= compose.python_env_reads(path)
            elif path.suffix == ".sh":
                names |= compose.shell_env_reads(path)
    return names


def library_reads(name):
    package = LIBRARY_READS.get(name)
    if not package:
        return False
    folder = Path(importlib.util.find_spec(package).origin).parent
    return any(name in path.read_text(errors="ignore") for path in folder.rglob("*.py"))


@pytest.fixture(scope="module")
def shared_reads():
    names = reads_in(SHARED_CODE)
    assert {"DJANGO_SECRET_KEY", "DATABASE_URL", "BROKER_URL", "CONVEYOR_WORKER_SHUTDOWN_TIMEOUT_SECONDS"} <= names, (
        "the scanner misses settings.py reads"
    )
    return names - {"DJANGO_SETTINGS_MODULE"}  # set by the image (Dockerfile ENV) and manage.py


def service_reads(name):
    reads = reads_in(SERVICE_CODE[name])
    return reads - {"PATH", "HOME", "DJANGO_SETTINGS_MODULE"}  # the last: Dockerfile ENV


def present(name):
    paths = SERVICE_CODE.get(name, [])
    return all(p.exists() for p in paths)


def test_every_setting_is_set_in_compose_for_every_app_service(raw, shared_reads):
    missing = {}
    for name, svc in compose.app_services(raw).items():
        env = compose.environment(svc)
        wanted = shared_reads | ((service_reads(name) - START_SCRIPT_DEFAULTS) if present(name) else set())
        gaps = sorted(wanted - env.keys())
        if gaps:
            missing[name] = gaps
    assert missing == {}


def test_compose_sets_nothing_that_nothing_reads(raw, shared_reads):
    unread = {}
    for name, svc in compose.app_services(raw).items():
        if not present(name):
            continue  # its code is on another branch: checked once merged
        readers = shared_reads | service_reads(name)
        extra = sorted(v for v in compose.environment(svc) if v not in readers and not library_reads(v))
        if extra:
            unread[name] = extra
    assert unread == {}


def test_env_example_offers_every_setting_and_names_the_fixed_ones(raw, shared_reads):
    example = compose.read_env_file(compose.ENV_EXAMPLE)
    comments = compose.ENV_EXAMPLE.read_text()
    wanted = set(shared_reads)
    for name in compose.app_services(raw):
        if present(name):
            wanted |= service_reads(name) - START_SCRIPT_DEFAULTS
    assert sorted(wanted - IMAGE_LAYOUT - COMPOSED - example.keys()) == []
    # The fixed and composed ones are documented where a reader looks for them.
    assert sorted(v for v in IMAGE_LAYOUT | COMPOSED if not re.search(rf"^#.*\b{v}\b", comments, re.M)) == []


def test_env_example_and_compose_interpolation_match(raw):
    example = compose.read_env_file(compose.ENV_EXAMPLE)
    used = compose.variables_used(raw)
    # Every knob compose interpolates is in .env.example, and every line of
    # .env.example is used by compose or the Makefile (no dead settings).
    assert sorted(used - example.keys()) == []
    assert sorted(example.keys() - used - MAKEFILE_READS) == []


def test_the_scanner_sees_a_new_setting(tmp_path):
    # A new env.int("X") in settings must show up, or the checks above prove nothing.
    source = tmp_path / "s.py"
    source.write_text(
        'import os, environ\nenv = environ.Env()\nA = env.int("NEW_ONE", default=1)\nB = os.environ.get("OTHER")\n'
    )
    script = tmp_path / "start.sh"
    script.write_text('#!/bin/sh\nlocal_var=1\nexec run --n "${THREADS:-8}" $local_var\n')
    assert compose.python_env_reads(source) == {"NEW_ONE", "OTHER"}
    assert compose.shell_env_reads(script) == {"THREADS"}
