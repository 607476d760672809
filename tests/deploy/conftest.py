"""Fixtures shared by the compose tests: the file as written, and the .env `make env` writes."""

import subprocess
import sys

import pytest

from tests.deploy import compose

ROOT = compose.ROOT


@pytest.fixture(scope="module")
def raw():
    """docker-compose.yml as written (anchors and merges resolved, nothing interpolated)."""
    return compose.load()


@pytest.fixture(scope="module")
def generated_env(tmp_path_factory):
    """.env as `make env` writes it from .env.example."""
    out = tmp_path_factory.mktemp("env") / ".env"
    subprocess.run(
        [sys.executable, "scripts/generate-env.py", "--output", str(out)], cwd=ROOT, check=True, capture_output=True
    )
    return compose.read_env_file(out)
