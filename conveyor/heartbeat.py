"""Heartbeat files: how a container probe knows a headless consumer is still working.

The worker and the relay serve no HTTP, so their healthcheck cannot ask them; instead
each process touches ``<tmp>/conveyor-heartbeats/<name>-<pid>`` while its loop runs,
and ``python -m conveyor.heartbeat <name>`` (the compose and Kubernetes probe) passes
when enough of those files are fresh. ``<tmp>`` is the container's own temp folder
(``tempfile.gettempdir()``, so ``TMPDIR`` moves it), never a shared volume: replicas
must not vouch for each other.
"""

import argparse
import atexit
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

DEFAULT_MAX_AGE_SECONDS = 30.0


def folder() -> Path:
    return Path(tempfile.gettempdir()) / "conveyor-heartbeats"


def _path(name: str, pid: int | None = None) -> Path:
    return folder() / f"{name}-{pid or os.getpid()}"


def beat(name: str) -> None:
    """Record that this process's `name` loop is alive now."""
    path = _path(name)
    try:
        path.touch()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        # A clean exit removes its file; a crashed process's file just goes stale.
        atexit.register(forget, name, os.getpid())


def forget(name: str, pid: int | None = None) -> None:
    _path(name, pid).unlink(missing_ok=True)


def fresh(name: str, max_age: float = DEFAULT_MAX_AGE_SECONDS) -> list[Path]:
    """Heartbeat files of `name` touched within `max_age` seconds."""
    now = time.time()
    found = []
    for path in folder().glob(f"{name}-*"):
        try:
            if now - path.stat().st_mtime <= max_age:
                found.append(path)
        except FileNotFoundError:
            continue  # removed by a process exiting right now
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conveyor.heartbeat", description=__doc__.splitlines()[0])
    parser.add_argument("name", help="worker, relay, ...")
    parser.add_argument("--max-age", type=float, default=DEFAULT_MAX_AGE_SECONDS, help="seconds (default %(default)s)")
    parser.add_argument("--count", type=int, default=1, help="fresh heartbeats required (one per process)")
    args = parser.parse_args(argv)
    found = fresh(args.name, args.max_age)
    if len(found) < args.count:
        print(
            f"unhealthy: {len(found)} of {args.count} {args.name} heartbeats"
            f" fresher than {args.max_age:g}s in {folder()}"
        )
        return 1
    print(f"ok: {len(found)} {args.name} heartbeats")
    return 0


if __name__ == "__main__":
    sys.exit(main())
