"""Dramatiq middleware: a hard time limit, for tasks Dramatiq's own time limit cannot stop.

Dramatiq's TimeLimit raises an exception in the task's thread, which lands only when that
thread runs Python again: a task blocked in a C call, a socket read or `time.sleep(1e9)`
outlives it and holds the thread for good. Here a thread checks every second; a run still
going CONVEYOR_HARD_TIME_LIMIT_GRACE_SECONDS after its time limit is stuck, and then:

1. the container's healthcheck stops passing (services/worker/heartbeat.py asks `stuck()`);
2. the stuck task is recorded FAILED ("hard time limit") and its message dead-lettered;
3. every other run of this process is given back (READY again, not counted as a worker
   death: this process is stopping them, they did nothing wrong), after the outcomes
   already handed over are committed;
4. the process exits at once (a thread cannot be killed in Python). Dramatiq's main process
   then stops the worker service, and the orchestrator (compose's restart policy,
   Kubernetes) starts a new one. RabbitMQ redelivers the messages this process held, and
   other workers run the given-back tasks.
"""

import logging
import os
import threading
import time
from typing import Any

from django.conf import settings
from dramatiq.middleware import Middleware

logger = logging.getLogger(__name__)

# The exit status of a worker process replaced because a task was stuck (sysexits' EX_SOFTWARE).
EXIT_STUCK = 70
CHECK_SECONDS = 1.0


class HardTimeLimit(Middleware):
    def __init__(self) -> None:
        self._runs: dict[int, tuple[Any, float, float]] = {}  # id(message) -> (message, deadline, limit)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.exit = os._exit  # replaced in tests

    def after_worker_boot(self, broker: Any, worker: Any) -> None:
        self._stop.clear()
        threading.Thread(target=self._watch, args=(broker,), name="conveyor-hard-time-limit", daemon=True).start()

    def before_worker_shutdown(self, broker: Any, worker: Any) -> None:
        self._stop.set()

    def before_process_message(self, broker: Any, message: Any) -> None:
        if getattr(message, "_conveyor_started", None) is None:
            return
        limit_ms = message.options.get("time_limit") or broker.get_actor(message.actor_name).options.get("time_limit")
        if not limit_ms:
            return
        limit = limit_ms / 1000
        deadline = time.monotonic() + limit + settings.CONVEYOR_HARD_TIME_LIMIT_GRACE_SECONDS
        with self._lock:
            self._runs[id(message)] = (message, deadline, limit)

    def after_process_message(self, broker: Any, message: Any, *, result: Any = None, exception: Any = None) -> None:
        with self._lock:
            self._runs.pop(id(message), None)

    after_skip_message = after_process_message

    def stuck(self) -> list[Any]:
        """The messages whose runs are past their hard time limit."""
        now = time.monotonic()
        with self._lock:
            return [message for message, deadline, _ in self._runs.values() if now > deadline]

    def _watch(self, broker: Any) -> None:
        while not self._stop.wait(CHECK_SECONDS):
            stuck = self.stuck()
            if stuck:
                self._replace_process(broker, stuck)
                return

    def _replace_process(self, broker: Any, stuck: list[Any]) -> None:
        from conveyor import states
        from conveyor.status import TaskStatus

        recorder, grace = broker.recorder, settings.CONVEYOR_HARD_TIME_LIMIT_GRACE_SECONDS
        with self._lock:
            running = {id(m): (m, limit) for m, _, limit in self._runs.values()}
        for message in stuck:
            limit = running[id(message)][1]
            logger.critical(
                "Task %s (%s) is still running %ss after its time limit of %ss: failing it and replacing this process",
                message.message_id,
                message.actor_name,
                settings.CONVEYOR_HARD_TIME_LIMIT_GRACE_SECONDS,
                limit,
            )
            error = {
                "exception_class_path": "conveyor.errors.HardTimeLimitExceeded",
                "message": (
                    f"still running {settings.CONVEYOR_HARD_TIME_LIMIT_GRACE_SECONDS} s after its time limit of "
                    f"{limit:g} s (blocked where Python cannot interrupt it); its worker process was replaced"
                ),
                "traceback": "",
                "attempt": message._conveyor_started.attempts,
            }
            outcome = states.Outcome(
                task_id=message.message_id,
                status=TaskStatus.FAILED,
                error=error,
                reason=f"hard time limit ({limit:g} s + {grace:g} s); dead-lettered",
                retries=message.options.get("retries", 0),
            )
            recorder.finish(outcome, message, dead_letter="hard_time_limit")
        others = [m for key, (m, _) in running.items() if all(key != id(s) for s in stuck)]
        for message in others:
            # Not acknowledged, whatever its run does in the moment left: RabbitMQ gives it to
            # another worker once this process is gone.
            message._conveyor_abandoned = True
        try:
            recorder.flush(timeout=10.0)
            recorder.release(others)
        except Exception:  # the process is going anyway; the lease tells the others
            logger.exception("Could not give back the other runs before exiting")
        time.sleep(0.5)  # let the consumers send the acknowledgements the flush settled
        self.exit(EXIT_STUCK)
