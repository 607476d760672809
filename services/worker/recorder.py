"""A worker process's record path: starts tasks in batches, group-commits their ends, settles messages.

One Recorder per worker process (the broker builds it). It owns:

- the process's identity and its row in conveyor.workers (renewed by the heartbeat
  middleware), which is what makes the tasks it runs its own;
- `slots`: how many worker threads are idle, so consumers start no more tasks than can
  run now (a task is RUNNING only while a thread runs it; the rest of RabbitMQ's
  prefetch waits, still READY and cancellable);
- `claim()`: one conveyor.states.claim statement for a consumer's batch;
- a thread that writes the outcomes of finished runs, every outcome that arrived while
  the previous commit was in flight in one statement (group commit: no added wait at
  light load, big batches under load), and then settles their messages: acknowledged,
  or dead-lettered, only once the outcome is committed. A write that fails is retried
  (a database restart or failover); the messages wait, unacknowledged, meanwhile;
- what the heartbeat reports and reads back (services/worker/activity.py): `holds` (paused
  queues, the quiet flag), `running` (claimed runs not yet ended) and `counts`. Counted,
  once per run and only after its end is committed by this process: `processed`, every
  run whose end was written (successful, failed for good, or failed and retried);
  `failed`, those of them that did not succeed (an exception, retried or final; a return
  value that cannot be stored; a run another middleware skipped). A run whose task was
  taken over by another worker meanwhile is not written here, so not counted here.
"""

import logging
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError, InterfaceError, OperationalError, connection

from conveyor import metrics
from services.worker.activity import Counts, Holds, Running

logger = logging.getLogger(__name__)

BATCH = 500
RETRY_SECONDS, RETRY_MAX_SECONDS = 0.1, 5.0


# Tasks shorter than this (a moving average) let consumers start the next batch while the
# current one runs: a task may then be RUNNING a moment before a thread picks it up.
SHORT_TASK_SECONDS, LONG_TASK_SECONDS = 0.02, 0.1
# With short tasks: how many batches of `threads` tasks may be started ahead, and how many
# messages per thread RabbitMQ may deliver ahead. Dramatiq's own prefetch is 2 per thread,
# but acknowledgements now wait for a commit, and so small a window starves the consumer.
# Measured with `python -m bench.probe 20000 2` (docs/performance.md).
LOOKAHEAD = 2
SHORT_PREFETCH_PER_THREAD = 16


class Slots:
    """Worker threads of this process that a consumer may give a task to now.

    As many as there are idle threads; when tasks are short (SHORT_TASK_SECONDS on
    average), as many again, so the next batch is started while this one runs instead of
    after it: with no-op tasks a worker otherwise waits a database round trip per batch.
    """

    def __init__(self) -> None:
        self._total = 0
        self._free = 0
        self._waiting = 0
        self._average = 1.0  # seconds per task, a moving average; starts "long"
        self._short = False
        self._cond = threading.Condition()

    def set_total(self, total: int) -> None:
        with self._cond:
            self._free += total - self._total
            self._total = total
            self._cond.notify_all()

    @property
    def short(self) -> bool:
        """Whether tasks have been short lately: under SHORT_TASK_SECONDS on average, until over LONG_TASK_SECONDS."""
        return self._short

    @property
    def total(self) -> int:
        return self._total

    def take(self, wanted: int) -> int:
        with self._cond:
            room = self._free + (self._total * LOOKAHEAD if self.short else 0)
            taken = max(0, min(wanted, room))
            self._free -= taken
            return taken

    def give(self, count: int = 1, *, seconds: float | None = None) -> None:
        with self._cond:
            self._free += count
            if seconds is not None:
                self._average += (seconds - self._average) / 16
                if self._short != (self._average < (LONG_TASK_SECONDS if self._short else SHORT_TASK_SECONDS)):
                    self._short = not self._short
            if self._waiting:
                self._cond.notify_all()

    def wait(self, timeout: float) -> None:
        with self._cond:
            if self._free <= 0:
                self._waiting += 1
                try:
                    self._cond.wait(timeout)
                finally:
                    self._waiting -= 1


@dataclass(slots=True)
class _Pending:
    outcome: Any  # conveyor.states.Outcome
    message: Any
    consumer: Any
    dead_letter: str | None  # the dead-letter reason, or None to acknowledge
    on_written: Any = None  # called in the recorder thread once written (signals)


class Recorder:
    def __init__(self, broker: Any) -> None:
        self.broker = broker
        self.slots = Slots()
        self.holds = Holds()
        self.running = Running()
        self.counts = Counts()
        self.me = None  # conveyor.workers.Identity, once started
        self._queues: list[str] = []
        self._pending: list[_Pending] = []
        self._writing = 0
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._idle = False
        # Figures for the log at shutdown: how well the batching worked.
        self.stats = {"claims": 0, "claimed": 0, "commits": 0, "outcomes": 0}

    # --- lifecycle (services/worker/lifecycle.py calls these) ---------------------------

    def start(self, threads: int, queues: Sequence[str]) -> None:
        # Late: django-dramatiq builds the broker, and so this, before the models are loaded.
        from conveyor import queues as queue_states
        from conveyor import workers

        self.me = workers.identity()
        self._queues = list(queues)
        self._retrying(lambda: workers.register(self.me, threads=threads, queues=self._queues), "register")
        # Before any consumer starts: a worker booting while a queue is paused takes nothing from it.
        self.holds.paused = frozenset(self._retrying(queue_states.paused, "read the paused queues"))
        self.slots.set_total(threads)
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="conveyor-recorder", daemon=True)
        self._thread.start()

    def renew(self) -> None:
        """Renew this process's lease with what it runs now (the heartbeat calls it); re-register
        if it was declared dead. Sets `holds.quiet` from the row."""
        from conveyor import workers

        if self.me is None:
            return
        quiet = workers.renew(self.me, running=self.running.report())
        if quiet is None:
            logger.warning("This worker's row was gone (presumed dead); registering it again")
            workers.register(self.me, threads=self.slots.total, queues=self._queues)
            quiet = False  # a new row: nobody asked it to be quiet
        if quiet != self.holds.quiet:
            logger.info("An operator asked this worker to %s", "take nothing new" if quiet else "take work again")
        self.holds.quiet = quiet

    def write_counts(self) -> None:
        """Add the runs counted since the last write to conveyor.throughput; kept for the next on failure."""
        from conveyor import throughput

        processed, failed = self.counts.take()
        try:
            throughput.add(self.me.id, processed, failed)
        except DatabaseError:
            self.counts.restore(processed, failed)
            raise

    def flush(self, timeout: float) -> bool:
        """Wait until every outcome handed over so far is written and settled."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending or self._writing:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.1))
        return True

    def stop(self, timeout: float = 30.0) -> None:
        from conveyor import workers

        if not self.flush(timeout):
            logger.warning("%d task outcomes could not be written before stopping", len(self._pending))
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        s = self.stats
        logger.info(
            "Started %d tasks in %d statements (%.1f each); recorded %d outcomes in %d commits (%.1f each)",
            s["claimed"],
            s["claims"],
            s["claimed"] / max(1, s["claims"]),
            s["outcomes"],
            s["commits"],
            s["outcomes"] / max(1, s["commits"]),
        )
        if self._thread is not None:
            self._thread.join(5.0)
        if self.me is not None:
            # The heartbeat was told to stop before this (its after-hook runs before ours):
            # the runs ended since its last beat are counted here, or they would be lost.
            try:
                self.write_counts()
            except DatabaseError as exc:
                logger.warning("Could not count the last runs: %s", exc)
            try:
                workers.forget(self.me)
            except DatabaseError as exc:
                logger.warning("Could not remove this worker's row: %s", exc)
        connection.close()

    # --- starting tasks (consumer threads) -----------------------------------------------

    def claim(self, consumer: Any, messages: Sequence[Any]) -> dict[int, str]:
        """Start the tasks of `messages`; {id(message): "started" | "busy" | "finished" | "dead"}.

        Raises a DatabaseError when the database cannot be reached (nothing was started).
        """
        from conveyor import states, workers

        verdicts: dict[int, str] = {}
        ids, first = [], {}
        for message in messages:
            if message.actor_name not in self.broker.actors:
                reason = f"dead-lettered: unknown task {message.actor_name!r} (not in this worker's catalog)"
                self._write(lambda m=message, r=reason: states.dead_letter(m.message_id, r))
                metrics.DEAD_LETTERS.labels(reason="unknown_task").inc()
                logger.warning("Dead-lettered message %s: unknown task %s", message.message_id, message.actor_name)
                verdicts[id(message)] = "dead"
            elif not _is_uuid(message.message_id):
                metrics.DEAD_LETTERS.labels(reason="no_record").inc()
                logger.warning("Dead-lettered message %s: not a Conveyor task id", message.message_id)
                verdicts[id(message)] = "dead"
            elif message.message_id in first:
                verdicts[id(message)] = "busy"  # two copies in one batch: the second waits for the first
            else:
                first[message.message_id] = message
                ids.append(message.message_id)
        claimed = self._write(lambda: states.claim(ids, self.me.id)) if ids else {}
        self.stats["claims"] += 1 if ids else 0
        self.stats["claimed"] += len(ids)
        gone_hosts, runs = set(), []
        for message in first.values():
            result = claimed[message.message_id]
            verdict = result.verdict
            if verdict is states.Verdict.STARTED:
                message._conveyor_started = result.started
                message._conveyor_consumer = consumer
                verdicts[id(message)] = "started"
                runs.append(
                    {
                        "id": str(message.message_id),
                        "task": message.actor_name,
                        "queue": message.queue_name,
                        "started_at": result.started.last_attempted_at,  # formatted by report()
                    }
                )
            elif verdict is states.Verdict.BUSY:
                verdicts[id(message)] = "busy"
                if result.worker and result.worker != self.me.id:
                    gone_hosts.add(result.worker)
            elif verdict is states.Verdict.FINISHED:
                verdicts[id(message)] = "finished"
            else:
                reason = "worker_died" if verdict is states.Verdict.GAVE_UP else "no_record"
                metrics.DEAD_LETTERS.labels(reason=reason).inc()
                logger.warning("Dead-lettered message %s (%s): %s", message.message_id, message.actor_name, reason)
                verdicts[id(message)] = "dead"
        self.running.started(runs)
        if gone_hosts:
            # A worker on this very host whose process is gone: its lease need not run out.
            dead = workers.gone_on_this_host(gone_hosts, self.me)
            if dead:
                logger.warning("Worker processes %s are gone; their tasks will be taken over", ", ".join(dead))
                workers.declare_dead(dead)
        return verdicts

    def release(self, messages: Sequence[Any]) -> None:
        """Give back claimed tasks that never ran (a stop): READY again."""
        from conveyor import states

        ids = [m.message_id for m in messages if getattr(m, "_conveyor_started", None) is not None]
        if not ids or self.me is None:
            return
        self.running.ended(ids)
        try:
            states.release(ids, self.me.id)
        except DatabaseError as exc:
            logger.warning("Could not give back %d unstarted tasks (%s); they are taken over later", len(ids), exc)
        self.slots.give(len(ids))

    # --- ending runs (worker threads hand over, the recorder thread writes) --------------

    def finish(self, outcome: Any, message: Any, *, dead_letter: str | None = None, on_written: Any = None) -> None:
        """Hand over a run's outcome; its message is settled once the outcome is committed."""
        message._conveyor_outcome = outcome
        self.running.ended([outcome.task_id])
        item = _Pending(outcome, message, getattr(message, "_conveyor_consumer", None), dead_letter, on_written)
        with self._cond:
            self._pending.append(item)
            if self._idle:
                self._cond.notify()

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            connection.close()  # this thread's own connection

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._idle = True
                    self._cond.wait()
                    self._idle = False
                if not self._pending and self._stopping:
                    return
                batch, self._pending = self._pending[:BATCH], self._pending[BATCH:]
                self._writing = len(batch)
            try:
                self._commit(batch)
            except Exception:  # never let the recorder thread die
                logger.exception("Recording %d task outcomes failed", len(batch))
            finally:
                with self._cond:
                    self._writing = 0
                    self._cond.notify_all()

    def _commit(self, batch: list[_Pending]) -> None:
        from conveyor import states
        from conveyor.status import TaskStatus

        try:
            written = self._write(lambda: states.finish([p.outcome for p in batch], self.me.id), forever=True)
        except (OperationalError, InterfaceError):
            raise  # stopping while the database is gone: the messages stay unsettled and come back
        except DatabaseError:
            # A row the database refuses (not a lost connection): write them one by one so
            # one bad outcome cannot hold back the others.
            written = []
            for item in batch:
                written += self._write_alone(item)
        done = {id(o) for o in written}
        self.stats["commits"] += 1
        self.stats["outcomes"] += len(batch)
        # Throughput (see the module docstring): only what this commit wrote, so each run once.
        self.counts.add(len(written), sum(1 for o in written if o.status != TaskStatus.SUCCESSFUL))
        acks, nacks = {}, {}
        for item in batch:
            if getattr(item.message, "_conveyor_abandoned", False):
                continue  # given back by this process (it is being replaced): RabbitMQ redelivers it
            if id(item.outcome) not in done:
                logger.info(
                    "Task %s was taken over by another worker; its result here is dropped", item.outcome.task_id
                )
            target = nacks if item.dead_letter else acks
            target.setdefault(id(item.consumer), (item.consumer, []))[1].append(item.message)
            if item.dead_letter:
                metrics.DEAD_LETTERS.labels(reason=item.dead_letter).inc()
        for key in set(acks) | set(nacks):
            consumer = (acks.get(key) or nacks.get(key))[0]
            if consumer is not None:
                consumer.settle(acks.get(key, (None, []))[1], nacks.get(key, (None, []))[1])
        for item in batch:
            if item.on_written is not None and id(item.outcome) in done:
                try:
                    item.on_written(item.outcome)
                except Exception:
                    logger.exception("A task_finished receiver failed")

    def _write_alone(self, item: _Pending) -> list:
        from conveyor import states
        from conveyor.status import TaskStatus

        try:
            return self._write(lambda: states.finish([item.outcome], self.me.id), forever=True)
        except (OperationalError, InterfaceError):
            raise
        except DatabaseError as exc:
            logger.error(
                "The outcome of task %s cannot be stored (%s); recording the failure", item.outcome.task_id, exc
            )
            outcome = item.outcome
            outcome.status, outcome.return_json, outcome.run_after = TaskStatus.FAILED, None, None
            outcome.error = {
                "exception_class_path": "conveyor.errors.UnstorableOutcome",
                "message": f"the outcome of this run could not be stored: {exc}"[:1000],
                "traceback": "",
            }
            outcome.reason = "its outcome could not be stored; dead-lettered"
            item.dead_letter = "unstorable_result"
            return self._write(lambda: states.finish([outcome], self.me.id), forever=True)

    def _write(self, operation: Any, *, forever: bool = False) -> Any:
        """Run a database operation; on a lost connection, reconnect and retry (forever, or raise)."""
        delay = RETRY_SECONDS
        while True:
            try:
                return operation()
            except (OperationalError, InterfaceError) as exc:
                connection.close()  # a new connection next time
                if not forever or self._stopping:
                    raise
                logger.warning("Database unavailable (%s); retrying in %.1fs", str(exc).strip()[:200], delay)
                time.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)

    def _retrying(self, operation: Any, what: str) -> Any:
        delay = RETRY_SECONDS
        while True:
            try:
                return operation()
            except (OperationalError, InterfaceError) as exc:
                connection.close()
                logger.warning("Could not %s (%s); retrying in %.1fs", what, exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)


def _is_uuid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True
