"""A heartbeat file for a process without an HTTP server (read by healthcheck.py).

Written after every pass of the scheduler loop, leader or standby, even when the
database is unreachable: it says "the loop is alive", so an orchestrator restarts a
hung process, not one waiting out a database outage (the JSON says which it is).
"""

import json
import os
import time
from pathlib import Path


def write(path, **state):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"at": time.time(), "pid": os.getpid(), **state}))
    os.replace(tmp, path)  # atomic: a reader never sees half a file


def read(path):
    return json.loads(Path(path).read_text())
