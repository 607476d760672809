"""Container healthcheck for the scheduler: exit 0 if its heartbeat is fresh, else 1.

    python -m services.scheduler.healthcheck [--max-age SECONDS]

Does not load Django (fast, and works while the database is down). The heartbeat path
is SCHEDULER_HEARTBEAT_FILE, default $CONVEYOR_DATA_DIR/scheduler.heartbeat (the
same default as config/settings.py).
"""

import argparse
import os
import sys
import time
from pathlib import Path

from services.scheduler import heartbeat


def default_path():
    data_dir = os.environ.get("CONVEYOR_DATA_DIR") or str(Path(__file__).resolve().parents[2] / "var")
    return os.environ.get("SCHEDULER_HEARTBEAT_FILE") or str(Path(data_dir) / "scheduler.heartbeat")


def check(path, max_age):
    try:
        state = heartbeat.read(path)
    except (OSError, ValueError) as exc:
        return False, f"no readable heartbeat at {path}: {exc}"
    age = time.time() - float(state.get("at", 0))
    role = "leader" if state.get("leader") else "standby"
    if age > max_age:
        return False, f"stale heartbeat: {age:.1f}s old (limit {max_age}s), pid {state.get('pid')}"
    detail = f", last error: {state['error']}" if state.get("error") else ""
    return True, f"ok: {role}, heartbeat {age:.1f}s old, pid {state.get('pid')}{detail}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", default=default_path())
    parser.add_argument(
        "--max-age", type=float, default=float(os.environ.get("SCHEDULER_HEARTBEAT_MAX_AGE_SECONDS", 30))
    )
    args = parser.parse_args(argv)
    healthy, message = check(args.file, args.max_age)
    print(message)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
