"""Pausing a queue and quieting a worker on the real RabbitMQ: the messages go back to the queue
(ready, for any worker), the consumer unsubscribes, running tasks end as usual."""

import os
import threading
import types

import dramatiq
import pytest
from django_dramatiq.utils import load_middleware

import demo.tasks
from conveyor import catalog, queues, submission, workers
from conveyor.core.models import TaskRecord, TaskStatus
from services.worker.broker import RabbitmqBroker
from tests.support.processes import wait_for
from tests.support.rabbitmq import purge_queues, rabbitmqctl

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def gate(monkeypatch):
    """demo.tasks.sleep blocks until the test opens the gate (instead of sleeping)."""
    opened = threading.Event()
    monkeypatch.setattr(demo.tasks, "time", types.SimpleNamespace(sleep=lambda seconds: opened.wait(60)))
    yield opened
    opened.set()


@pytest.fixture
def start_worker(settings, gate):
    """Real Dramatiq workers on the real broker, on the default queue, with a fast heartbeat."""
    settings.CONVEYOR_WORKER_HEARTBEAT_SECONDS = 0.2
    purge_queues("default", "default.DQ", "default.XQ")
    started, brokers = [], []

    def start(broker=None):
        worker = dramatiq.Worker(
            broker or dramatiq.get_broker(), worker_threads=2, worker_timeout=100, queues={"default"}
        )
        worker.start()
        started.append(worker)
        return worker

    def second_broker():
        """A broker of its own, so a second worker in this process has its own recorder and identity."""
        broker = RabbitmqBroker(
            url=settings.BROKER_URL,
            confirm_delivery=True,
            max_priority=10,
            middleware=[load_middleware(path) for path in settings.DRAMATIQ_BROKER["MIDDLEWARE"]],
        )
        catalog.declare_actors(broker)
        brokers.append(broker)
        return broker

    start.second_broker = second_broker
    yield start
    gate.set()
    for worker in started:
        worker.stop()
    for broker in brokers:
        broker.close()


def default_queue():
    """RabbitMQ's own figures for the default queue: ready, unacked, consumers."""
    out = rabbitmqctl(
        "list_queues",
        "-p",
        os.environ["CONVEYOR_TEST_VHOST"],
        "--no-table-headers",
        "name",
        "messages_ready",
        "messages_unacknowledged",
        "consumers",
    ).stdout
    for line in out.strip().splitlines():
        name, ready, unacked, consumers = line.split("\t")
        if name == "default":
            return {"ready": int(ready), "unacked": int(unacked), "consumers": int(consumers)}
    return None


def submit(path, *args):
    record = submission.prepare(submission.TaskSpec(task_path=path, args=list(args), kwargs={}))
    return submission.submit_many([record])[0]


def statuses(records):
    return [TaskRecord.objects.get(id=r.id).status for r in records]


def test_a_paused_queue_gives_its_messages_back_unsubscribes_and_runs_them_once_resumed(start_worker, gate):
    # Given a worker whose two threads run tasks that wait for the gate
    start_worker()
    running = [submit("demo.tasks.sleep", 1), submit("demo.tasks.sleep", 1)]
    wait_for(lambda: statuses(running) == [TaskStatus.RUNNING] * 2, 30, "both tasks to start")
    # And two more tasks delivered to it (its prefetch is 2 per thread), waiting for a thread
    waiting = [submit("demo.tasks.add", 1, 1), submit("demo.tasks.add", 2, 2)]
    wait_for(lambda: default_queue() == {"ready": 0, "unacked": 4, "consumers": 1}, 30, "the delivery")
    # When the queue is paused
    queues.pause("default", by="ops")
    # Then the worker gives the unstarted messages back (ready again) and unsubscribes
    wait_for(lambda: default_queue() == {"ready": 2, "unacked": 2, "consumers": 0}, 30, "the give-back")
    # And what is published meanwhile waits in RabbitMQ too
    waiting.append(submit("demo.tasks.add", 3, 3))
    wait_for(lambda: default_queue()["ready"] == 3, 30, "the new message")
    # And the running tasks end, are recorded and their messages acknowledged
    gate.set()
    wait_for(lambda: statuses(running) == [TaskStatus.SUCCESSFUL] * 2, 30, "the running tasks")
    wait_for(lambda: default_queue() == {"ready": 3, "unacked": 0, "consumers": 0}, 30, "the acknowledgements")
    # While none of the waiting tasks was started
    assert statuses(waiting) == [TaskStatus.READY] * 3
    assert [TaskRecord.objects.get(id=r.id).attempts for r in waiting] == [0, 0, 0]
    # When the queue is resumed
    queues.resume("default", by="ops")
    # Then the worker subscribes again and runs them all, once each
    wait_for(lambda: statuses(waiting) == [TaskStatus.SUCCESSFUL] * 3, 30, "the waiting tasks")
    assert [TaskRecord.objects.get(id=r.id).return_value for r in waiting] == [2, 4, 6]
    assert [TaskRecord.objects.get(id=r.id).attempts for r in waiting] == [1, 1, 1]
    wait_for(lambda: default_queue() == {"ready": 0, "unacked": 0, "consumers": 1}, 30, "the settled queue")


def test_a_quiet_worker_finishes_its_running_task_while_another_worker_takes_the_rest(start_worker, gate):
    # Given a worker running a task that waits for the gate
    quiet_worker = start_worker()
    quiet_id = quiet_worker.broker.recorder.me.id
    running = submit("demo.tasks.sleep", 1)
    wait_for(lambda: statuses([running]) == [TaskStatus.RUNNING], 30, "the task to start")
    # When an operator asks it to be quiet
    workers.set_quiet(quiet_id)
    # Then it unsubscribes, and tasks sent now wait in RabbitMQ
    wait_for(lambda: default_queue()["consumers"] == 0, 30, "the quiet worker to unsubscribe")
    rest = [submit("demo.tasks.add", n, n) for n in range(3)]
    wait_for(lambda: default_queue()["ready"] == 3, 30, "the new messages")
    # And another worker takes them all
    other = start_worker(start_worker.second_broker())
    other_id = other.broker.recorder.me.id
    wait_for(lambda: statuses(rest) == [TaskStatus.SUCCESSFUL] * 3, 30, "the other worker to run them")
    assert [TaskRecord.objects.get(id=r.id).worker_ids for r in rest] == [[other_id]] * 3
    # While the quiet worker still runs its task, and then records its end
    assert statuses([running]) == [TaskStatus.RUNNING]
    gate.set()
    wait_for(lambda: statuses([running]) == [TaskStatus.SUCCESSFUL], 30, "the quiet worker's task to end")
    assert TaskRecord.objects.get(id=running.id).worker_ids == [quiet_id]
    wait_for(lambda: default_queue() == {"ready": 0, "unacked": 0, "consumers": 1}, 30, "every message settled")
