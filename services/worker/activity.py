"""What a worker process tells the database about itself, and what it is told back, each heartbeat.

Three small holders shared between threads; the heartbeat thread
(services/worker/heartbeat.py) is the only one that talks to the database about them:

- `Holds`: the queues an operator paused (conveyor.queues) and whether this process was
  asked to be quiet (conveyor.workers.set_quiet). The heartbeat sets them; every
  ClaimingConsumer reads them in its own thread each time Dramatiq asks it for a message,
  and takes nothing new while they hold its queue. Each field is replaced whole (a
  frozenset, a bool), so a reader sees the old value or the new one, never half of one.
- `Running`: the runs this process claimed and has not ended yet, reported with the
  lease (WorkerProcess.running) so the dashboard shows what each worker runs now.
- `Counts`: runs whose end this process committed since the last heartbeat, added to
  conveyor.throughput by the heartbeat (one write per beat, not one per run).
"""

import itertools
import threading
from collections.abc import Iterable

# The running list is for people: a worker with hundreds of threads reports its oldest runs.
MAX_REPORTED = 100


class Holds:
    """Whether this process may start new tasks from a queue."""

    def __init__(self) -> None:
        self.paused: frozenset[str] = frozenset()  # queues an operator paused
        self.quiet = False  # an operator asked this process to take nothing new

    def holds(self, queue: str) -> bool:
        return self.quiet or queue in self.paused


class Running:
    """Claimed, not yet ended runs: {task id: {"id", "task", "queue", "started_at"}}."""

    def __init__(self) -> None:
        self._runs: dict[str, dict] = {}  # insertion order: oldest claim first
        self._lock = threading.Lock()

    def started(self, runs: Iterable[dict]) -> None:
        with self._lock:
            for run in runs:
                self._runs[run["id"]] = run

    def ended(self, task_ids: Iterable[str]) -> None:
        with self._lock:
            for task_id in task_ids:
                self._runs.pop(str(task_id), None)

    def report(self, limit: int = MAX_REPORTED) -> list[dict]:
        """The oldest `limit` runs, as JSON-ready copies (times in ISO 8601)."""
        with self._lock:
            runs = list(itertools.islice(self._runs.values(), limit))
        # Formatted here, every few seconds, rather than per claim on the hot path.
        return [{**run, "started_at": run["started_at"].isoformat()} for run in runs]


class Counts:
    """Runs recorded since the last flush: processed (every end) and failed (those that did not succeed)."""

    def __init__(self) -> None:
        self._processed = 0
        self._failed = 0
        self._lock = threading.Lock()

    def add(self, processed: int, failed: int) -> None:
        with self._lock:
            self._processed += processed
            self._failed += failed

    def take(self) -> tuple[int, int]:
        """The counts so far, reset to zero; `restore` them if they could not be written."""
        with self._lock:
            taken = (self._processed, self._failed)
            self._processed = self._failed = 0
            return taken

    def restore(self, processed: int, failed: int) -> None:
        self.add(processed, failed)
