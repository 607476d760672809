"""PostgreSQL restarted while tasks flow: every accepted task ends SUCCESSFUL, none stuck, none lost.

The test runs a PostgreSQL server of its own (tests/support/postgres.py), stops it for some
seconds in the middle of a stream of submissions, and starts it again. Web, two workers and
the relay reconnect by themselves.
"""

import os
import subprocess
import sys
import threading
import time

import psycopg
import pytest

from tests.support.postgres import PrivateServer
from tests.support.processes import ROOT, http, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


@pytest.fixture
def private_postgres():
    server = PrivateServer().init().start()
    yield server
    server.destroy()


def manage(env, *args):
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def statuses(url, ids):
    with psycopg.connect(url, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT status, count(*) FROM conveyor_taskrecord WHERE id = ANY(%s::uuid[]) GROUP BY status", [ids]
        ).fetchall()
    return dict(rows)


def test_postgresql_restarted_mid_stream_loses_and_strands_nothing(start_system, system_env, private_postgres):
    # Given the whole system on a PostgreSQL server of the test's own
    url = private_postgres.create_database("conveyor")
    env = {**system_env, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings"}
    manage({**os.environ, **env}, "migrate", "--noinput", "-v0")
    token = manage({**os.environ, **env}, "create_token", "--scope", "write").strip().splitlines()[-1]
    system = start_system(workers=2, env={"DATABASE_URL": url})
    accepted, refused, stop = [], [], threading.Event()

    def stream():
        while not stop.is_set():
            status, body, _ = http(
                "POST",
                f"{system.base_url}/api/v1/tasks",
                {"task": "demo.tasks.sleep", "args": [0.05]},
                token,
                timeout=15,
            )
            (accepted.append(body["id"]) if status == 202 else refused.append(status))
            time.sleep(0.02)

    client = threading.Thread(target=stream)
    client.start()
    try:
        # When tasks flow, PostgreSQL stops for some seconds, then starts again
        time.sleep(4)
        before = len(accepted)
        private_postgres.stop()
        time.sleep(6)
        private_postgres.start()
        time.sleep(6)
    finally:
        stop.set()
        client.join(30)
    # (tasks were accepted before and after; while it was down, submissions got 503, never 202)
    print(f"accepted {before} before the stop, {len(accepted)} in all; refused {len(refused)}")
    assert before > 0 and len(accepted) > before
    assert set(refused) <= {503}, refused
    # Then every accepted task ends SUCCESSFUL, none stuck READY or RUNNING, none lost
    wait_for(lambda: statuses(url, accepted).get("SUCCESSFUL", 0) == len(accepted), 180, "every task to succeed")
    assert statuses(url, accepted) == {"SUCCESSFUL": len(accepted)}
