"""make dev's restart policy for workers (scripts/respawn.sh), as compose's `restart: unless-stopped`."""

import os
import signal
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESPAWN = str(ROOT / "scripts" / "respawn.sh")


def run_counted(tmp_path, exit_code, runs_before_success):
    """A command that exits with `exit_code` until it has run `runs_before_success` times, then 0."""
    counter = tmp_path / "runs"
    script = (
        f"n=$(( $(cat {counter} 2>/dev/null || echo 0) + 1 )); echo $n > {counter}; "
        f"[ $n -ge {runs_before_success} ] && exit 0; exit {exit_code}"
    )
    done = subprocess.run([RESPAWN, "bash", "-c", script], capture_output=True, text=True, timeout=60)
    return done.returncode, int(counter.read_text())


def test_a_command_that_exits_on_its_own_is_started_again(tmp_path):
    # Given a worker that exits with 70 twice (replaced by its hard time limit), then runs to the end
    # When it runs under respawn
    code, runs = run_counted(tmp_path, 70, runs_before_success=3)
    # Then it was started again each time, and respawn ends with it
    assert (code, runs) == (0, 3)


def test_a_command_that_cannot_start_is_not_retried(tmp_path):
    # Given a worker that fails its imports (Dramatiq exits 2), which retrying cannot fix
    # When it runs under respawn
    code, runs = run_counted(tmp_path, 2, runs_before_success=99)
    # Then respawn stops with it after one run
    assert (code, runs) == (2, 1)


def test_sigterm_stops_the_command_and_the_loop(tmp_path):
    # Given a long-running command under respawn
    marker = tmp_path / "stopped"
    proc = subprocess.Popen(
        [RESPAWN, "bash", "-c", f"trap 'touch {marker}; exit 0' TERM; sleep 60 & wait"],
        start_new_session=True,
    )
    try:
        time.sleep(1)
        # When respawn gets SIGTERM (as honcho sends it on Ctrl-C)
        proc.send_signal(signal.SIGTERM)
        # Then the command got it too and nothing is started again
        assert proc.wait(timeout=30) == 0
        assert marker.exists()
    finally:
        try:  # the command's `sleep`, left behind by its trap
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
