"""`manage.py check --deploy` is clean with the production profile: the environment
compose gives the web service, from a generated .env plus deploy/production.env."""

import os
import re
import subprocess
import sys

import pytest

from tests.deploy import compose
from tests.deploy.compose import ROOT


def web_environment(tmp_path, *env_files):
    generated = tmp_path / ".env"
    subprocess.run(
        [sys.executable, "scripts/generate-env.py", "--output", str(generated)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    values = {}
    for path in (generated, *env_files):  # later files win, like repeated --env-file
        values.update(compose.read_env_file(path))
    web = compose.interpolate(compose.load(), values)["services"]["web"]
    return {k: v for k, v in compose.environment(web).items() if v is not None}


def check_deploy(env):
    # Only PATH from the host: the settings must come from compose's environment alone.
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], **env, "DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True,
        text=True,
    )


def test_check_deploy_is_clean_with_the_production_profile(tmp_path):
    env = web_environment(tmp_path, ROOT / "deploy/production.env")
    assert env["DJANGO_DEBUG"] == "false" and len(env["DJANGO_SECRET_KEY"]) >= 50
    result = check_deploy(env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_the_local_profile_differs_only_by_tls(tmp_path):
    # The plain-HTTP profile of .env.example (no TLS proxy in front) must fail only the
    # two TLS checks, so the production profile above is the only difference that matters.
    result = check_deploy(web_environment(tmp_path))
    codes = sorted(set(re.findall(r"\(security\.(W\d+)\)", result.stdout + result.stderr)))
    assert codes == ["W004", "W008"], result.stdout + result.stderr


@pytest.mark.parametrize("override", [{"DJANGO_DEBUG": "true"}, {"DJANGO_SECRET_KEY": "short"}])
def test_check_deploy_would_catch_a_weakened_profile(tmp_path, override):
    env = {**web_environment(tmp_path, ROOT / "deploy/production.env"), **override}
    assert check_deploy(env).returncode != 0
