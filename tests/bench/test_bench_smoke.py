"""`make bench` must keep working: a tiny run of the whole benchmark, no timing asserted.

The benchmark itself (python -m bench) is what `make bench` runs at full size; here it
runs with BENCH_SCALE=0.02 (a few hundred tasks) and one repetition, and we check that
every figure came out and that it left nothing behind.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.report import rows

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(600)]


def _alive(pid):
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_tiny_benchmark_run_reports_every_figure_and_cleans_up(tmp_path):
    # Given: the benchmark at a tiny scale, outside the test session's settings.
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "BROKER_URL")}
    env.update(BENCH_SCALE="0.02", BENCH_REPEATS="1", BENCH_SCALE_PROCESSES="1,2", BENCH_RESULTS_DIR=str(tmp_path))

    # When: it runs.
    run = subprocess.run(
        [sys.executable, "-m", "bench"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=540
    )

    # Then: it succeeded and printed the table.
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert not json.loads((tmp_path / "latest.json").read_text())["errors"]
    assert "ratio / target" in run.stdout
    result = json.loads((tmp_path / "latest.json").read_text())

    # And: every figure was measured (positive), unless skipped with a stated reason.
    skipped = result["skipped"]
    for key, _label, _unit in rows(result["config"]):
        reason = skipped.get(key) or skipped.get(key.split(".")[0])
        if reason:
            assert "make bench" in reason
            continue
        figure = result["figures"].get(key)
        assert figure is not None, f"{key} missing"
        # CPU time is counted in 10 ms ticks: a tiny run may see none for a fast peer.
        assert figure["median"] >= 0 if key.startswith("cpu.") else figure["median"] > 0, key
    # And: every ratio has a value, or the report says why it has none.
    for ratio in result["ratios"]:
        assert ratio["value"] is not None or ratio["why"], ratio["label"]

    # And: every process group it started is gone, and so are its vhosts and database.
    created = result["created"]
    assert created["process_groups"] and not [pid for pid in created["process_groups"] if _alive(pid)]
    if shutil.which("rabbitmqctl"):
        vhosts = subprocess.run(["rabbitmqctl", "-q", "list_vhosts"], capture_output=True, text=True).stdout.split()
        assert not set(created["vhosts"]) & set(vhosts)
    import psycopg

    with psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres") as conn:
        names = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
    assert not set(created["databases"]) & names
