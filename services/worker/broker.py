"""Dramatiq's brokers with Conveyor's record path: tasks claimed in batches, messages settled after commit.

Dramatiq's actors, middleware (retries, time limits) and CLI are used as they are; only
the consumer changes (services/worker/consumers.py). Delay queues (`<queue>.DQ`) keep
Dramatiq's own consumer: their messages are not task runs.

    DRAMATIQ_BROKER = {"BROKER": "services.worker.broker.RabbitmqBroker", ...}
"""

from typing import Any

from dramatiq.broker import Consumer
from dramatiq.brokers import rabbitmq, stub
from dramatiq.common import xq_name
from dramatiq.errors import QueueNotFound

from conveyor import queue_types
from services.worker.consumers import BufferedRabbitmqConsumer, BufferedStubConsumer, ClaimingConsumer
from services.worker.recorder import Recorder


class _Recording:
    """Wraps each consumer of a task queue in a ClaimingConsumer sharing this process's Recorder."""

    @property
    def recorder(self) -> Recorder:
        # One per process: built on first use, in the worker process itself.
        recorder = self.__dict__.get("_recorder")
        if recorder is None:
            recorder = self.__dict__["_recorder"] = Recorder(self)
        return recorder

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> Consumer:
        inner = super().consume(queue_name, prefetch, timeout)
        if queue_name.endswith(".DQ"):
            return inner
        return ClaimingConsumer(inner, self, queue_name)


class RabbitmqBroker(_Recording, rabbitmq.RabbitmqBroker):
    """Also declares its queues as CONVEYOR_QUEUE_TYPE says (conveyor/queue_types.py).

    Every process (web, relay, scheduler, workers) declares through this class, so a queue
    gets the same arguments whoever declares it first.
    """

    @property
    def consumer_class(self) -> Any:
        return BufferedRabbitmqConsumer

    def _build_queue_arguments(self, queue_name: str) -> dict:
        return {**super()._build_queue_arguments(queue_name), **queue_types.work_queue_arguments()}

    def _declare_xq_queue(self, queue_name: str) -> Any:
        return self.channel.queue_declare(
            queue=xq_name(queue_name),
            durable=True,
            arguments={"x-message-ttl": rabbitmq.DEAD_MESSAGE_TTL, **queue_types.dead_letter_queue_arguments()},
        )


class StubBroker(_Recording, stub.StubBroker):
    """Dramatiq's StubBroker with the same record path (unit tests only)."""

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 100) -> Consumer:
        if queue_name.endswith(".DQ"):
            return stub.StubBroker.consume(self, queue_name, prefetch, timeout)
        try:
            queue = self.queues[queue_name]
        except KeyError:
            raise QueueNotFound(queue_name) from None
        inner = BufferedStubConsumer(queue, self.dead_letters_by_queue[queue_name], prefetch, timeout)
        return ClaimingConsumer(inner, self, queue_name)
