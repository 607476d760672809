"""docker-compose.yml checked without a Docker engine: the Compose Specification's
schema, then the mistakes that schema cannot see."""

import json
import os
import subprocess
import sys

import jsonschema
import pytest

from tests.deploy import compose
from tests.deploy.compose import ROOT

SCHEMA = ROOT.parent / "shared" / "schemas" / "compose-spec.json"
# Written on other branches; until they are merged here the checks that need them skip.
PENDING_PATHS = {
    "deploy/prometheus": "observability branch",
    "deploy/grafana": "observability branch",
    "services/scheduler": "scheduler branch",
}


def pending(path):
    rel = os.path.relpath(path, ROOT)
    for prefix, branch in PENDING_PATHS.items():
        if (rel == prefix or rel.startswith(prefix + "/")) and not (ROOT / prefix).exists():
            return f"{prefix} comes from the {branch} (not merged here yet)"
    return None


@pytest.fixture(scope="module")
def example_env():
    return compose.read_env_file(compose.ENV_EXAMPLE)


@pytest.fixture(scope="module")
def resolved(raw, generated_env):
    return compose.interpolate(raw, generated_env)


def validator():
    schema = json.loads(SCHEMA.read_text())
    # The spec's schema is draft-07 (its $schema URL uses https, which jsonschema does not map).
    return jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)


def test_compose_file_validates_against_the_compose_spec_as_written_and_as_interpolated(raw, resolved):
    # Given the Compose Specification's JSON schema and the YAML-parsed compose file
    # (anchors and << merges resolved, as compose resolves them before validating)
    schema_errors = {
        name: [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator().iter_errors(doc)]
        for name, doc in (("as written", raw), ("with .env", resolved))
    }
    # Then neither the file nor its interpolated form breaks the schema
    assert schema_errors == {"as written": [], "with .env": []}


def test_the_schema_check_catches_a_misspelt_key(raw):
    # Given the compose file with a typo a human makes (healthcheck.intervall)
    broken = json.loads(json.dumps(raw))
    broken["services"]["web"]["healthcheck"]["intervall"] = "5s"
    # Then the validator refuses it (the check above is not vacuous)
    assert list(validator().iter_errors(broken))


def test_worker_can_be_scaled(raw):
    worker = raw["services"]["worker"]
    # `--scale worker=4` fails with a container_name, and every replica after the
    # first would fail to bind a fixed host port.
    assert "container_name" not in worker
    assert not worker.get("ports"), "a worker publishes no port: replicas would collide"
    assert "hostname" not in worker, "replicas must keep their own host names (they make the worker ids)"


def test_every_long_running_service_has_a_healthcheck(raw):
    one_shot = {name for name, svc in raw["services"].items() if str(svc.get("restart", "no")) == "no"}
    missing = [
        name
        for name, svc in raw["services"].items()
        if name not in one_shot and (not svc.get("healthcheck") or svc["healthcheck"].get("disable"))
    ]
    assert missing == []
    # The only one-shot service is the migration step, and services wait for its success.
    assert one_shot == {"migrate"}


def test_dependencies_wait_for_health_and_for_the_migration(raw):
    services = raw["services"]
    for name, svc in services.items():
        for dep, spec in (svc.get("depends_on") or {}).items():
            condition = spec["condition"]
            if condition == "service_healthy":
                assert services[dep].get("healthcheck"), (
                    f"{name} waits for {dep} to be healthy, but {dep} has no healthcheck"
                )
            else:
                assert (condition, dep) == ("service_completed_successfully", "migrate"), (name, dep, condition)
    for name in compose.app_services(raw):
        if name != "migrate":
            assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name
            assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy", name
            assert services[name]["depends_on"]["rabbitmq"]["condition"] == "service_healthy", name


def test_long_running_services_restart(raw):
    for name, svc in raw["services"].items():
        if name != "migrate":
            assert svc.get("restart") in ("unless-stopped", "always", "on-failure"), name


@pytest.mark.parametrize("source", ["example", "defaults"])
def test_grace_periods_cover_the_shutdown_timeouts(raw, example_env, source):
    # With .env.example's values, and with compose's own defaults (an .env missing the lines)
    env = {
        **example_env,
        "DJANGO_SECRET_KEY": "x",
        "POSTGRES_PASSWORD": "x",
        "RABBITMQ_PASSWORD": "x",
        "GRAFANA_ADMIN_PASSWORD": "x",
    }
    if source == "defaults":
        env = {k: v for k, v in env.items() if k.endswith(("PASSWORD", "SECRET_KEY"))}
    doc = compose.interpolate(raw, env)
    worker, web = doc["services"]["worker"], doc["services"]["web"]
    shutdown = int(compose.environment(worker)["CONVEYOR_WORKER_SHUTDOWN_TIMEOUT_SECONDS"])
    # Then compose's SIGKILL comes after the worker has had its full shutdown timeout,
    # with room for the last acknowledgements and the process exit.
    assert compose.duration_seconds(worker["stop_grace_period"]) >= shutdown + 10
    assert compose.duration_seconds(web["stop_grace_period"]) > int(compose.environment(web)["WEB_GRACEFUL_TIMEOUT"])


def test_no_default_credentials(raw, example_env):
    # Secrets are required (compose refuses to start without them) and never committed.
    for name in ("DJANGO_SECRET_KEY", "POSTGRES_PASSWORD", "RABBITMQ_PASSWORD", "GRAFANA_ADMIN_PASSWORD"):
        assert example_env[name] == "", f"{name} must be generated, not committed"
        with pytest.raises(compose.MissingVariable):
            compose.interpolate(raw, {k: v for k, v in example_env.items() if k != name})
    rabbit = compose.interpolate(
        raw,
        {
            **example_env,
            "RABBITMQ_PASSWORD": "p",
            "POSTGRES_PASSWORD": "p",
            "DJANGO_SECRET_KEY": "k",
            "GRAFANA_ADMIN_PASSWORD": "g",
        },
    )
    env = compose.environment(rabbit["services"]["rabbitmq"])
    assert "guest" not in (env["RABBITMQ_DEFAULT_USER"], env["RABBITMQ_DEFAULT_PASS"])


def test_generated_env_fills_every_secret_and_is_private(tmp_path):
    out = tmp_path / ".env"
    # When `make env` runs
    subprocess.run(
        [sys.executable, "scripts/generate-env.py", "--output", str(out)], cwd=ROOT, check=True, capture_output=True
    )
    values = compose.read_env_file(out)
    # Then every secret has a fresh value compose can interpolate (no $) and URLs can carry
    secrets_ = {k: v for k, v in values.items() if k.endswith(("_PASSWORD", "_SECRET_KEY"))}
    assert secrets_ and all(len(v) >= 24 and v.replace("-", "").replace("_", "").isalnum() for v in secrets_.values())
    assert len(values["DJANGO_SECRET_KEY"]) >= 50
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    compose.interpolate(compose.load(), values)  # no required variable left unset
    # And running it again never replaces secrets the volumes were initialised with
    subprocess.run(
        [sys.executable, "scripts/generate-env.py", "--output", str(out)], cwd=ROOT, check=True, capture_output=True
    )
    assert compose.read_env_file(out) == values


def test_bind_mounts_and_commands_exist(raw):
    missing, skipped = [], []
    for name, svc in raw["services"].items():
        for volume in svc.get("volumes") or []:
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith((".", "/")):
                path = (ROOT / source).resolve()
                reason = pending(path)
                if reason:
                    skipped.append(reason)
                elif not path.exists():
                    missing.append(f"{name}: {source}")
        script = compose.script_of(svc)
        if script:
            reason = pending(script)
            if reason:
                skipped.append(reason)
            elif not os.access(script, os.X_OK):
                missing.append(f"{name}: {script.relative_to(ROOT)} missing or not executable")
    assert missing == []
    if skipped:
        pytest.skip("; ".join(sorted(set(skipped))))


def test_make_up_hands_compose_the_env_file_not_makes_dev_defaults(tmp_path):
    # Given a stand-in for `docker compose` that records its arguments and environment
    fake = tmp_path / "fake-compose"
    record = tmp_path / "record.json"
    fake.write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        f"json.dump({{'argv': sys.argv[1:], 'debug': os.environ.get('DJANGO_DEBUG')}}, open({str(record)!r}, 'w'))\n"
    )
    fake.chmod(0o755)
    env_file = tmp_path / ".env"
    # When `make up` runs without a .env
    # (from a shell without DJANGO_DEBUG, as a user's; make test's own environment aside)
    shell = {k: v for k, v in os.environ.items() if k not in ("DJANGO_DEBUG", "MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    subprocess.run(
        ["make", "-s", "up", f"COMPOSE={fake}", f"ENV_FILE={env_file}"],
        cwd=ROOT,
        env=shell,
        check=True,
        capture_output=True,
    )
    called = json.loads(record.read_text())
    # Then it created the .env with secrets, passed it, scaled the workers to 4, and did
    # not leak the DJANGO_DEBUG=true the Makefile exports for `make dev`
    assert compose.read_env_file(env_file)["DJANGO_SECRET_KEY"]
    assert called["argv"] == ["--env-file", str(env_file), "up", "-d", "--build", "--scale", "worker=4"]
    assert called["debug"] is None
