"""Helpers for the cluster tests: a steady stream of submissions, and waiting on records."""

import threading
import time

from conveyor.core.models import OutboxEntry, TaskRecord, TaskStatus
from tests.support.processes import http, wait_for


class Stream:
    """POST demo.tasks.add(i, i) at `rate` per second from a thread, noting each answer and when it came."""

    def __init__(self, base_url, token, rate=20):
        self.base_url, self.token, self.interval = base_url, token, 1.0 / rate
        self.answers = []  # (monotonic time of the answer, status, task id or None, i)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stream", daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(30)

    def _run(self):
        i = 0
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                status, body, _ = http(
                    "POST", f"{self.base_url}/api/v1/tasks", {"task": "demo.tasks.add", "args": [i, i]}, self.token
                )
            except Exception as exc:  # a timeout or a refused connection: not accepted
                status, body = type(exc).__name__, None
            task_id = body["id"] if status == 202 else None
            self.answers.append((time.monotonic(), status, task_id, i))
            i += 1
            next_at += self.interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    @property
    def accepted(self):
        """{task id: i} of every submission answered 202."""
        return {task_id: i for _, status, task_id, i in self.answers if status == 202}

    def refusals(self):
        return [(at, status) for at, status, _, _ in self.answers if status != 202]


def wait_all_successful(ids, timeout, what="every accepted task to be SUCCESSFUL"):
    ids = list(ids)

    def done():
        return TaskRecord.objects.filter(id__in=ids, status=TaskStatus.SUCCESSFUL).count() == len(ids)

    try:
        wait_for(done, timeout, what)
    except TimeoutError:
        left = TaskRecord.objects.filter(id__in=ids).exclude(status=TaskStatus.SUCCESSFUL)
        print(f"not SUCCESSFUL: {list(left.values('id', 'status', 'attempts', 'worker_deaths')[:20])}")
        print(f"outbox: {OutboxEntry.objects.count()} entries")
        raise


def assert_each_ran_once(accepted):
    """Every accepted task SUCCESSFUL with its own result, started once and never taken over."""
    rows = {str(r["id"]): r for r in TaskRecord.objects.filter(id__in=list(accepted)).values()}
    assert len(rows) == len(accepted)
    bad = [
        (task_id, row["status"], row["attempts"], row["worker_ids"], row["errors"])
        for task_id, row in rows.items()
        if row["status"] != TaskStatus.SUCCESSFUL
        or row["return_value"] != 2 * accepted[task_id]
        or row["attempts"] != 1
        or len(row["worker_ids"]) != 1
        or row["errors"]
        or row["worker_deaths"] != 0
    ]
    assert not bad, bad[:10]
