"""What operators ask of workers, and what workers report (StubBroker, real database): paused queues,
quiet workers, the running list and throughput counts.

The heartbeat beats every 0.2 s here, so the tests wait for beats, never for a time.
"""

import time
import types
from datetime import timedelta

import dramatiq
import pytest
from django.db import DatabaseError
from django.db.models import Sum
from django.utils import timezone

import demo.tasks
from conveyor import heartbeat, queues, submission, throughput, workers
from conveyor.core.models import TaskRecord, TaskStatus, Throughput, WorkerProcess
from tests.conftest import publish_pending_outbox

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def gate(monkeypatch):
    """demo.tasks.sleep blocks until the test opens the gate (instead of sleeping)."""
    import threading

    opened = threading.Event()
    monkeypatch.setattr(demo.tasks, "time", types.SimpleNamespace(sleep=lambda seconds: opened.wait(60)))
    yield opened
    opened.set()  # never leave a worker thread blocked behind a failed test


@pytest.fixture
def start_worker(stub_broker, settings, gate):
    settings.CONVEYOR_WORKER_HEARTBEAT_SECONDS = 0.2
    started = []

    def start(threads=2):
        worker = dramatiq.Worker(stub_broker, worker_timeout=50, worker_threads=threads)
        worker.start()
        started.append(worker)
        return worker

    yield start
    gate.set()
    for worker in started:
        worker.stop()


def submit(path, *args, **kwargs):
    record = submission.prepare(submission.TaskSpec(task_path=path, args=list(args), kwargs=kwargs))
    record = submission.submit_many([record])[0]
    publish_pending_outbox()
    return record


def wait_until(predicate, what, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def status_of(record):
    return TaskRecord.objects.get(id=record.id).status


def me(stub_broker):
    return stub_broker.recorder.me.id


def beats(stub_broker, count=3):
    """Wait until this worker's heartbeat has renewed its lease `count` more times."""
    seen = []

    def renewed():
        at = WorkerProcess.objects.filter(id=me(stub_broker)).values_list("seen_at", flat=True).first()
        if not seen or at != seen[-1]:
            seen.append(at)
        return len(seen) > count

    wait_until(renewed, f"{count} heartbeats")


def in_stub_queue(stub_broker, queue="default"):
    """Messages waiting in the stub queue: not taken by any consumer."""
    return stub_broker.queues[queue].qsize()


# --- pausing a queue ---------------------------------------------------------------------------


def test_a_paused_queues_task_stays_ready_while_another_queues_task_runs(stub_broker, start_worker):
    # Given the default queue paused before the worker starts
    queues.pause("default", by="ops")
    start_worker()
    # When a task is sent to it, and another to the emails queue
    waiting = submit("demo.tasks.add", 4, 6)
    email = submit("demo.tasks.send_email", "a@example.com", "hi", "body")
    # Then the email runs
    wait_until(lambda: status_of(email) == TaskStatus.SUCCESSFUL, "the email task")
    beats(stub_broker)
    # And the paused queue's task is still READY, never started, its message still in the queue
    record = TaskRecord.objects.get(id=waiting.id)
    assert (record.status, record.attempts) == (TaskStatus.READY, 0)
    assert in_stub_queue(stub_broker) == 1


def test_resuming_a_paused_queue_runs_its_waiting_tasks(stub_broker, start_worker):
    # Given a paused queue with a task waiting in it
    queues.pause("default")
    start_worker()
    record = submit("demo.tasks.add", 4, 6)
    beats(stub_broker)
    assert status_of(record) == TaskStatus.READY
    # When it is resumed
    queues.resume("default")
    # Then its task runs
    wait_until(lambda: status_of(record) == TaskStatus.SUCCESSFUL, "the resumed task")
    assert TaskRecord.objects.get(id=record.id).return_value == 10


def test_pausing_gives_back_unstarted_messages_and_lets_running_tasks_finish(stub_broker, start_worker, gate):
    # Given both threads busy with tasks that run until the gate opens
    start_worker(threads=2)
    running = [submit("demo.tasks.sleep", 1), submit("demo.tasks.sleep", 1)]
    wait_until(lambda: all(status_of(r) == TaskStatus.RUNNING for r in running), "both tasks to start")
    # And two more tasks delivered to the consumer, waiting for a free thread
    waiting = [submit("demo.tasks.add", 1, 1), submit("demo.tasks.add", 2, 2)]
    wait_until(lambda: in_stub_queue(stub_broker) == 0, "the consumer to take the waiting messages")
    # When the queue is paused
    queues.pause("default")
    # Then the waiting messages go back to the queue
    wait_until(lambda: in_stub_queue(stub_broker) == 2, "the unstarted messages to be given back")
    # And the running tasks finish and are recorded as usual
    gate.set()
    wait_until(lambda: all(status_of(r) == TaskStatus.SUCCESSFUL for r in running), "the running tasks to end")
    beats(stub_broker)
    # While the waiting ones were never started
    assert [status_of(r) for r in waiting] == [TaskStatus.READY, TaskStatus.READY]
    assert in_stub_queue(stub_broker) == 2


# --- quieting a worker -------------------------------------------------------------------------


def test_a_quiet_worker_finishes_its_running_task_and_starts_nothing_new(stub_broker, start_worker, gate):
    # Given a worker running a task
    start_worker()
    running = submit("demo.tasks.sleep", 1)
    wait_until(lambda: status_of(running) == TaskStatus.RUNNING, "the task to start")
    # When an operator asks it to be quiet, and another task arrives
    workers.set_quiet(me(stub_broker))
    wait_until(lambda: stub_broker.recorder.holds.quiet, "the worker to learn it is quiet")
    waiting = submit("demo.tasks.add", 1, 2)
    # Then its running task ends and is recorded
    gate.set()
    wait_until(lambda: status_of(running) == TaskStatus.SUCCESSFUL, "the running task to end")
    beats(stub_broker)
    # And the new task was not started: its message waits for another worker
    assert status_of(waiting) == TaskStatus.READY
    assert in_stub_queue(stub_broker) == 1


def test_a_worker_no_longer_quiet_takes_work_again(stub_broker, start_worker):
    # Given a quiet worker and a task waiting
    start_worker()
    workers.set_quiet(me(stub_broker))
    wait_until(lambda: stub_broker.recorder.holds.quiet, "the worker to learn it is quiet")
    record = submit("demo.tasks.add", 1, 2)
    beats(stub_broker)
    assert status_of(record) == TaskStatus.READY
    # When the quiet flag is cleared
    workers.set_quiet(me(stub_broker), quiet=False)
    # Then it runs the task
    wait_until(lambda: status_of(record) == TaskStatus.SUCCESSFUL, "the task")


def test_a_quiet_worker_stays_healthy(stub_broker, start_worker):
    # Given a quiet worker
    start_worker()
    workers.set_quiet(me(stub_broker))
    wait_until(lambda: stub_broker.recorder.holds.quiet, "the worker to learn it is quiet")
    # When its heartbeat file is removed
    heartbeat.forget("worker")
    # Then the heartbeat touches it again: idle on purpose is not unhealthy
    wait_until(lambda: heartbeat.fresh("worker"), "the heartbeat file")


# --- what a worker reports ---------------------------------------------------------------------


def running_list(stub_broker):
    return WorkerProcess.objects.get(id=me(stub_broker)).running


def test_the_running_list_shows_what_the_worker_runs_now(stub_broker, start_worker, gate):
    # Given a worker running a task
    start_worker()
    record = submit("demo.tasks.sleep", 1)
    # When its heartbeat reports
    wait_until(lambda: running_list(stub_broker), "the running list")
    # Then its row lists that task, with its queue and start time
    (entry,) = running_list(stub_broker)
    assert (entry["id"], entry["task"], entry["queue"]) == (str(record.id), "demo.tasks.sleep", "default")
    assert entry["started_at"] == TaskRecord.objects.get(id=record.id).last_attempted_at.isoformat()
    # And once the task ended the list is empty again
    gate.set()
    wait_until(lambda: running_list(stub_broker) == [], "the list to empty")


def counted():
    totals = Throughput.objects.aggregate(processed=Sum("processed"), failed=Sum("failed"))
    return totals["processed"] or 0, totals["failed"] or 0


def test_throughput_counts_each_run_once_and_failed_runs_as_failed(stub_broker, start_worker):
    start_worker()
    # Given a task that succeeds, one that fails for good, and one that fails once and is retried
    ok = submit("demo.tasks.add", 1, 1)
    bad = submit("demo.tasks.fail", "boom")
    flaky = submit("demo.tasks.flaky", 1)
    # When they have all ended (the retry is published from the outbox when due)

    def ended():
        publish_pending_outbox()
        return [status_of(r) for r in (ok, bad, flaky)] == [
            TaskStatus.SUCCESSFUL,
            TaskStatus.FAILED,
            TaskStatus.SUCCESSFUL,
        ]

    wait_until(ended, "the three tasks to end")
    # Then four runs are counted, two of them failed (the final failure and the retried attempt)
    wait_until(lambda: counted() == (4, 2), "the throughput counts")
    # And nothing is counted twice by later beats
    beats(stub_broker)
    assert counted() == (4, 2)


def test_counts_that_could_not_be_written_are_written_at_a_later_beat(stub_broker, start_worker, monkeypatch):
    # Given a database that refuses the first throughput writes
    real, refused = throughput.add, []

    def refusing(worker, processed, failed, at=None):
        if processed and len(refused) < 3:
            refused.append(processed)
            raise DatabaseError("could not write")
        return real(worker, processed, failed, at)

    monkeypatch.setattr(throughput, "add", refusing)
    start_worker()
    # When a task runs
    record = submit("demo.tasks.add", 1, 1)
    wait_until(lambda: status_of(record) == TaskStatus.SUCCESSFUL, "the task")
    # Then its run is counted once the writes go through
    wait_until(lambda: counted() == (1, 0), "the throughput counts")
    assert refused == [1, 1, 1]


def test_the_heartbeat_drops_throughput_buckets_past_their_keep(stub_broker, start_worker):
    # Given a bucket older than conveyor.throughput.KEEP, and a recent one
    now = timezone.now()
    Throughput.objects.create(
        at=throughput.bucket(now - throughput.KEEP - timedelta(minutes=1)), worker="w", processed=1
    )
    Throughput.objects.create(at=throughput.bucket(now), worker="w", processed=2)
    # When a worker's heartbeat runs
    start_worker()
    # Then the old bucket is gone and the recent one kept
    wait_until(lambda: Throughput.objects.filter(worker="w").count() == 1, "the old bucket to go")
    assert Throughput.objects.get(worker="w").processed == 2


def test_a_clean_stop_counts_the_runs_ended_since_the_last_beat(stub_broker, settings, gate):
    # Given a worker whose heartbeat beats at boot and then only every 5 s (its longest interval)
    settings.CONVEYOR_WORKER_HEARTBEAT_SECONDS = 60
    worker = dramatiq.Worker(stub_broker, worker_timeout=50, worker_threads=2)
    worker.start()
    try:
        # When a task runs and the worker is stopped before its next beat
        record = submit("demo.tasks.add", 1, 1)
        wait_until(lambda: status_of(record) == TaskStatus.SUCCESSFUL, "the task")
    finally:
        worker.stop()
    # Then the run is counted anyway
    assert counted() == (1, 0)
