"""End-to-end throughput of a running `make dev`: tasks/s from submission to SUCCESSFUL.

    make dev                                   # one terminal (WORKERS=2 by default)
    .venv/bin/python scripts/dev-throughput.py "$(make -s token | tail -1)" 5000

Submits N `demo.tasks.noop` over the HTTP API in batches of 1,000, waits until every
one has finished, and prints N / (first enqueued_at -> last finished_at) from the
task records themselves. Only the standard library, so it measures the system, not
a client library. Waiting polls the API, which itself costs the web process a little;
reading every record back at the end (one GET each) takes longer than the run itself.
"""

import json
import sys
import time
import urllib.request
from datetime import datetime

BASE = "http://127.0.0.1:8000/api/v1"
FINISHED = ("SUCCESSFUL", "FAILED", "CANCELLED")


def main(token, count, timeout=600):
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def call(method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(BASE + path, method=method, headers=headers, data=data)
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    started = time.monotonic()
    ids = []
    for first in range(0, count, 1000):
        batch = [{"task": "demo.tasks.noop"} for _ in range(min(1000, count - first))]
        ids += [task["id"] for task in call("POST", "/tasks/batch", {"tasks": batch})["tasks"]]
    submitted = time.monotonic() - started

    pending = list(ids)
    while pending:
        if time.monotonic() - started > timeout:
            sys.exit(f"{len(pending)} of {count} tasks not finished after {timeout} s")
        time.sleep(0.5)
        # Oldest first: once the first unfinished one is found, the rest can wait.
        while pending and call("GET", f"/tasks/{pending[0]}")["status"] in FINISHED:
            pending.pop(0)

    tasks = [call("GET", f"/tasks/{task_id}") for task_id in ids]
    successful = sum(task["status"] == "SUCCESSFUL" for task in tasks)
    first_enqueued = min(datetime.fromisoformat(task["enqueued_at"]) for task in tasks)
    last_finished = max(datetime.fromisoformat(task["finished_at"]) for task in tasks)
    span = (last_finished - first_enqueued).total_seconds()
    print(
        f"{count} tasks, {successful} SUCCESSFUL; submitted in {submitted:.2f} s ({count / submitted:,.0f}/s); "
        f"first enqueued -> last finished {span:.2f} s: {count / span:,.0f} tasks/s"
    )
    return 0 if successful == count else 1


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], int(sys.argv[2])))
