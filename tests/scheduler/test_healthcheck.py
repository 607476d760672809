"""The heartbeat healthcheck a container orchestrator runs against the scheduler."""

import os
import subprocess
import sys
import time

from services.scheduler import heartbeat
from services.scheduler.healthcheck import check


def test_a_fresh_heartbeat_is_healthy(tmp_path):
    path = tmp_path / "hb"
    heartbeat.write(path, leader=True, passes=1)
    healthy, message = check(path, 30)
    assert healthy and "leader" in message


def test_a_stale_heartbeat_is_unhealthy(tmp_path):
    path = tmp_path / "hb"
    heartbeat.write(path, leader=False)
    state = heartbeat.read(path)
    path.write_text(__import__("json").dumps({**state, "at": time.time() - 31}))
    assert check(path, 30)[0] is False


def test_the_command_exits_1_without_a_heartbeat(tmp_path):
    env = {**os.environ, "SCHEDULER_HEARTBEAT_FILE": str(tmp_path / "missing")}
    result = subprocess.run([sys.executable, "-m", "services.scheduler.healthcheck"], env=env, capture_output=True)
    assert result.returncode == 1 and b"no readable heartbeat" in result.stdout
