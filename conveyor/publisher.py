"""The in-process fast path: publish freshly committed tasks from one background thread.

pika connections are not thread-safe, so each process publishes from a single thread
that owns its connection. Request threads only hand over outbox entries after their
transaction commits, so a slow or absent broker never slows a request. What
this thread cannot publish stays leased in the outbox and a relay takes it later.
"""

import atexit
import logging
import os
import queue
import threading
import time
from collections.abc import Iterable

from django.db import close_old_connections, connections, transaction

from conveyor import confirms, outbox
from conveyor.core.models import OutboxEntry

logger = logging.getLogger(__name__)


_STOP = object()  # handed over by stop(): publish what came before it, close, end the thread


class Publisher:
    BATCH = 500

    def __init__(self) -> None:
        self._queue = queue.Queue()
        self._thread = None
        self._lock = threading.Lock()
        self._pid = None

    def hand_over(self, entries: Iterable[OutboxEntry]) -> None:
        """Publish these committed outbox entries (each holding its task) from the publisher thread."""
        self._ensure_thread()
        self._queue.put(list(entries))

    def _ensure_thread(self) -> None:
        # After a fork (gunicorn) the parent's thread does not exist in the child.
        if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
                self._pid = os.getpid()
                self._queue = queue.Queue()
                self._thread = threading.Thread(target=self._run, name="conveyor-publisher", daemon=True)
                self._thread.start()
                # A script that enqueues and exits should not leave its tasks to the relay.
                atexit.register(self.stop)

    def _take_batch(self) -> tuple[list[OutboxEntry], int, bool]:
        try:
            entries = self._queue.get(timeout=1.0)
        except queue.Empty:
            # Idle: give the database connection back rather than hold it forever.
            connections.close_all()
            try:
                entries = self._queue.get(timeout=confirms.MAX_IDLE_SECONDS)
            except queue.Empty:
                # Longer idle: the broker connection too (nothing answers its heartbeats).
                confirms.close()
                entries = self._queue.get()
        if entries is _STOP:
            return [], 1, True
        entries, taken = list(entries), 1
        while len(entries) < self.BATCH:
            try:
                more = self._queue.get_nowait()
            except queue.Empty:
                break
            taken += 1
            if more is _STOP:
                return entries, taken, True
            entries.extend(more)
        return entries, taken, False

    def _run(self) -> None:
        stopping = False
        while not stopping:
            entries, taken, stopping = self._take_batch()
            try:
                if entries:
                    outbox.deliver(entries)
            except Exception:
                logger.exception("Publisher failed; %d tasks wait in the outbox for a relay", len(entries))
                time.sleep(0.5)
            finally:
                close_old_connections()
                if stopping:
                    # Closing here, while the broker is still there, rather than on a later
                    # idle timeout, which would find the connection dead and log an error.
                    confirms.close()
                    connections.close_all()
                for _ in range(taken):
                    self._queue.task_done()

    def stop(self, timeout: float = 5.0) -> bool:
        """Publish what was handed over, close the broker connection and end the thread.

        The next publish() starts a new thread. Returns False if the thread did not end in time.
        """
        thread = self._thread
        if thread is None or not thread.is_alive() or self._pid != os.getpid():
            return True
        self._queue.put(_STOP)
        thread.join(timeout)
        return not thread.is_alive()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything handed over so far was tried (the scheduler at shutdown, tests)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.01)
        return False


publisher = Publisher()


def publish_after_commit(entries: Iterable[OutboxEntry]) -> None:
    """Hand the entries leased to this process (tasks due now) to its publisher once the transaction commits.

    Outside a transaction that is at once. Deferred tasks' entries wait for a relay.
    """
    due = outbox.due_now(list(entries))
    if due:
        transaction.on_commit(lambda: publisher.hand_over(due))
