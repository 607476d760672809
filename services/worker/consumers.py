"""Consumers that start tasks in batches before Dramatiq runs them, and settle messages after commit.

Dramatiq's consumer hands each message to a worker thread, which acknowledges it when the
task returns, whatever happened to the task's record. Here, between RabbitMQ and
Dramatiq's worker threads:

- `ClaimingConsumer.__next__` takes every message already delivered, up to the number of
  idle worker threads, and starts all their tasks with one statement
  (conveyor.states.claim). Only started tasks reach Dramatiq. A message whose task
  finished is acknowledged. One whose task runs on a live worker never runs beside it:
  a second publish is acknowledged (the running worker holds its own delivery, which
  RabbitMQ gives back if that worker dies); a redelivered copy, which may be that very
  delivery come back after a lost connection, is kept and asked about again until the
  run ends or its worker is gone. A message with no task, an unknown task, or a task
  whose workers died too often is dead-lettered. If the database cannot be reached, the
  messages stay unacknowledged and are claimed once it is back.
- A message is acknowledged (or dead-lettered) only after its run's outcome is committed
  by the worker process's recorder (services/worker/recorder.py), which settles a whole
  batch at once: one `basic.ack` with `multiple` for the contiguous part of the batch.
- While its queue is paused, or its process is quiet (the recorder's `holds`, set by the
  heartbeat thread; services/worker/activity.py), a ClaimingConsumer starts nothing: it
  gives back to RabbitMQ every message it holds and did not claim (a requeue: they are
  ready again, for any worker) and cancels its subscription, so RabbitMQ delivers nothing
  more to it and counts one consumer less. It keeps servicing its connection, so runs
  already started end and are settled as usual. When the hold ends it subscribes again.
  A given-back message comes back marked redelivered; for a READY task that changes
  nothing (claim starts it), for a task running elsewhere the copy is parked instead of
  acknowledged at once (see above), which costs a wait, never a second run. All pika
  calls stay in the consumer's own thread: the heartbeat only flips the flags.

The buffered consumers below are Dramatiq's RabbitMQ and stub consumers with more calls:
`drain()` returns the messages already delivered without waiting, `settle()`
acknowledges and rejects many messages at once, from any thread, and `unsubscribe()`,
`subscribe()` and `idle()` serve a held consumer.
"""

import logging
import time
from collections import deque
from collections.abc import Iterable, Sequence
from functools import partial
from queue import Empty
from typing import TYPE_CHECKING, Any

import pika
import pika.exceptions
from dramatiq.broker import Consumer, MessageProxy
from dramatiq.brokers.rabbitmq import _RabbitmqConsumer, _RabbitmqMessage
from dramatiq.brokers.stub import _StubConsumer, _StubMessageProxy
from dramatiq.common import q_name
from dramatiq.errors import ConnectionClosed, DecodeError
from dramatiq.message import Message

from conveyor import metrics
from services.worker.recorder import SHORT_PREFETCH_PER_THREAD

if TYPE_CHECKING:
    from services.worker.recorder import Recorder

logger = logging.getLogger(__name__)

# A message whose task runs on another live worker is asked about again after this long.
PARK_SECONDS = 2.0
# Longest a consumer waits without servicing its connection while messages wait.
IDLE_POLL_SECONDS = 0.5
# After the database refused a claim, wait this long (doubling, up to the maximum) before the next.
CLAIM_BACKOFF_SECONDS, CLAIM_BACKOFF_MAX_SECONDS = 0.1, 5.0


class BufferedRabbitmqConsumer(_RabbitmqConsumer):
    """Dramatiq's RabbitMQ consumer, fed by basic_consume into a buffer we can drain."""

    def __init__(self, broker: Any, queue_name: str, prefetch: int, timeout: int) -> None:
        self.broker = broker
        self.queue_name = queue_name
        self.prefetch = prefetch
        self.timeout = timeout / 1000
        self.logger = logger
        self.known_tags: set[int] = set()
        self._deliveries: deque = deque()
        self._tag: str | None = None  # the subscription (None while unsubscribed)
        try:
            self.connection = pika.BlockingConnection(parameters=broker.parameters)
            self.channel = self.connection.channel()
            self.channel.basic_qos(prefetch_count=prefetch)
            self._tag = self.channel.basic_consume(queue_name, self._on_delivery)
        except (pika.exceptions.AMQPConnectionError, pika.exceptions.AMQPChannelError) as e:
            raise ConnectionClosed(e) from None

    def _on_delivery(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        self._deliveries.append((method, body))

    def _pump(self, time_limit: float) -> None:
        try:
            self.connection.process_data_events(time_limit=time_limit)
        except (AssertionError, pika.exceptions.AMQPConnectionError, pika.exceptions.AMQPChannelError) as e:
            if getattr(e, "reply_code", None) == 404:
                self.broker.queues_pending.add(q_name(self.queue_name))
            raise ConnectionClosed(e) from None

    def _take(self) -> MessageProxy | None:
        while self._deliveries:
            method, body = self._deliveries.popleft()
            try:
                message = Message.decode(body)
            except DecodeError:
                # Counted by conveyor.encoding; rejected to <queue>.XQ, as Dramatiq does.
                self.logger.exception("Failed to decode a message; dead-lettering it")
                self.channel.basic_nack(method.delivery_tag, requeue=False)
                continue
            self.known_tags.add(method.delivery_tag)
            return _RabbitmqMessage(method.redelivered, method.delivery_tag, message)
        return None

    def __next__(self) -> MessageProxy | None:
        if not self._deliveries:
            self._pump(self.timeout)
        return self._take()

    def set_prefetch(self, prefetch: int) -> None:
        """How many unacknowledged messages RabbitMQ may deliver (call from the consumer's thread).

        A consumer's prefetch is fixed when it subscribes (basic.qos applies to the next
        consumer on the channel, and per-channel limits are not supported by quorum
        queues), so this subscribes again. What was delivered stays ours, unacknowledged;
        pika hands back to the queue what arrived but was not yet dispatched to us.
        """
        if prefetch == self.prefetch:
            return
        if self._tag is None:  # unsubscribed: the next subscribe() uses it
            self.prefetch = prefetch
            return
        try:
            self._pump(0)
            self.channel.basic_qos(prefetch_count=prefetch)
            self.channel.basic_cancel(self._tag)
            self._tag = self.channel.basic_consume(self.queue_name, self._on_delivery)
        except (pika.exceptions.AMQPConnectionError, pika.exceptions.AMQPChannelError) as e:
            raise ConnectionClosed(e) from None
        self.prefetch = prefetch

    def poll(self, seconds: float) -> None:
        """Service the connection for up to `seconds`, returning early when a delivery comes."""
        if not self._deliveries:
            self._pump(seconds)

    def unsubscribe(self, messages: Sequence[MessageProxy]) -> None:
        """Give back `messages` (taken, never claimed) and whatever else was delivered, and cancel
        the subscription: RabbitMQ delivers nothing more here, and shows them ready, until subscribe()."""
        if self._tag is None:
            return
        try:
            # Cancel first, so what is given back cannot be delivered here again; pika
            # requeues what arrived and was not dispatched to us yet.
            self.channel.basic_cancel(self._tag)
            self._tag = None
            for message in messages:
                if message._tag in self.known_tags:
                    self.known_tags.discard(message._tag)
                    self.channel.basic_nack(message._tag, requeue=True)
            while self._deliveries:
                method, _ = self._deliveries.popleft()
                self.channel.basic_nack(method.delivery_tag, requeue=True)
        except (pika.exceptions.AMQPConnectionError, pika.exceptions.AMQPChannelError) as e:
            raise ConnectionClosed(e) from None

    def subscribe(self) -> None:
        """Take deliveries again after unsubscribe()."""
        if self._tag is not None:
            return
        try:
            self.channel.basic_qos(prefetch_count=self.prefetch)
            self._tag = self.channel.basic_consume(self.queue_name, self._on_delivery)
        except (pika.exceptions.AMQPConnectionError, pika.exceptions.AMQPChannelError) as e:
            raise ConnectionClosed(e) from None

    def idle(self, seconds: float) -> None:
        """Service the connection (settlements, heartbeats) for `seconds`, taking nothing."""
        self._pump(seconds)

    def drain(self) -> list[MessageProxy]:
        """The messages already delivered, without waiting for more."""
        self._pump(0)
        taken = []
        while (message := self._take()) is not None:
            taken.append(message)
        return taken

    def settle(self, acks: Sequence[MessageProxy], nacks: Sequence[MessageProxy]) -> None:
        """Acknowledge `acks` and dead-letter `nacks`; callable from any thread."""
        try:
            self.connection.add_callback_threadsafe(partial(self._settle_now, list(acks), list(nacks)))
        except Exception as exc:  # the connection is gone: RabbitMQ gives the messages to another consumer
            logger.warning("Could not settle %d messages on %s: %s", len(acks) + len(nacks), self.queue_name, exc)

    def _settle_now(self, acks: list[MessageProxy], nacks: list[MessageProxy]) -> None:
        # Runs in the consumer's own thread (pika's I/O loop).
        if not self.channel.is_open:
            return
        for message in nacks:
            if message._tag in self.known_tags:
                self.known_tags.discard(message._tag)
                self.channel.basic_nack(message._tag, requeue=False)
        tags = {message._tag for message in acks} & self.known_tags
        if not tags:
            return
        # One ack with `multiple` covers every outstanding tag up to the highest one whose
        # predecessors are all being acknowledged; the rest are acknowledged one by one.
        highest = None
        for tag in sorted(self.known_tags):
            if tag not in tags:
                break
            highest = tag
        if highest is not None:
            self.channel.basic_ack(highest, multiple=True)
        for tag in sorted(tags):
            if highest is None or tag > highest:
                self.channel.basic_ack(tag)
        self.known_tags -= tags

    def ack(self, message: MessageProxy) -> None:
        self.settle([message], [])

    def nack(self, message: MessageProxy) -> None:
        self.settle([], [message])


class BufferedStubConsumer(_StubConsumer):
    """Dramatiq's stub consumer with drain() and settle() (unit tests)."""

    def set_prefetch(self, prefetch: int) -> None:
        pass  # the stub's window is a semaphore sized once

    def poll(self, seconds: float) -> None:
        if self.queue.empty():
            time.sleep(seconds)

    def drain(self) -> list[MessageProxy]:
        taken = []
        while self.prefetch_semaphore.acquire(blocking=False):
            try:
                taken.append(_StubMessageProxy(Message.decode(self.queue.get_nowait())))
            except Empty:
                self.prefetch_semaphore.release()
                break
        return taken

    def settle(self, acks: Sequence[MessageProxy], nacks: Sequence[MessageProxy]) -> None:
        for message in nacks:
            self.nack(message)
        for message in acks:
            self.ack(message)

    def unsubscribe(self, messages: Sequence[MessageProxy]) -> None:
        # Back at the end of the queue, as RabbitMQ's requeue would put them back (ready again).
        for message in messages:
            self.queue.put(message._message.encode())
            self.queue.task_done()  # the get() that took it
            self.prefetch_semaphore.release()

    def subscribe(self) -> None:
        pass  # the stub has no subscription: a held consumer just stops draining

    def idle(self, seconds: float) -> None:
        time.sleep(seconds)


class ClaimingConsumer(Consumer):
    """Starts tasks in batches before Dramatiq sees them; see the module docstring."""

    def __init__(self, inner: Any, broker: Any, queue_name: str) -> None:
        self.inner = inner
        self.broker = broker
        self.queue_name = queue_name
        self.recorder: Recorder = broker.recorder
        self._waiting: deque[MessageProxy] = deque()  # delivered, not yet claimed
        self._ready: deque[MessageProxy] = deque()  # claimed: Dramatiq's worker threads run these
        self._parked: list[tuple[float, MessageProxy]] = []  # BUSY elsewhere: (ask again at, message)
        self._paused_until = 0.0
        self._backoff = CLAIM_BACKOFF_SECONDS
        self._base_prefetch = getattr(inner, "prefetch", 0)
        self._held = False  # the queue is paused or the process quiet: unsubscribed, taking nothing

    def __iter__(self) -> "ClaimingConsumer":
        return self

    def __next__(self) -> MessageProxy | None:
        if self._ready:  # claimed already: RUNNING, so it runs, paused or not
            return self._ready.popleft()
        if self.recorder.holds.holds(self.queue_name):
            self._hold()
            return None
        if self._held:
            logger.info("Taking tasks from %s again", self.queue_name)
            self.inner.subscribe()
            self._held = False
        slots = self.recorder.slots
        if self._base_prefetch and slots.total:
            # Short tasks: let RabbitMQ deliver further ahead (acks wait for a commit, and a
            # small window then starves the consumer); long ones: Dramatiq's own window, so
            # one process does not hoard the messages other workers could run.
            self.inner.set_prefetch(
                max(self._base_prefetch, slots.total * SHORT_PREFETCH_PER_THREAD)
                if slots.short
                else self._base_prefetch
            )
        if self._waiting or self._parked:
            # Messages wait for a free thread, a parked recheck or the database: keep RabbitMQ's
            # connection serviced, without sitting in it for the whole idle timeout, and
            # without spinning either.
            now = time.monotonic()
            if now < self._paused_until:  # the database refused the last claim
                self.inner.poll(min(self._paused_until - now, IDLE_POLL_SECONDS))
            elif not self._waiting:  # only parked messages, asked about again later
                due = min(at for at, _ in self._parked)
                self.inner.poll(min(max(due - now, 0.0), IDLE_POLL_SECONDS))
            else:  # waiting for a free thread
                slots.wait(0.05)
            self._waiting.extend(self.inner.drain())
        else:
            first = next(self.inner)
            if first is not None:
                self._waiting.append(first)
                self._waiting.extend(self.inner.drain())
        if self.recorder.holds.holds(self.queue_name):  # held while we waited for messages: claim none
            self._hold()
            return None
        self._claim()
        return self._ready.popleft() if self._ready else None

    def _hold(self) -> None:
        """Take nothing new: give back what was not claimed, unsubscribe, keep settling runs."""
        if not self._held:
            unclaimed = [message for _, message in self._parked] + list(self._waiting)
            self._parked.clear()
            self._waiting.clear()
            self.inner.unsubscribe(unclaimed)
            self._held = True
            logger.info("Not taking tasks from %s (paused, or this worker is quiet)", self.queue_name)
        self.inner.idle(IDLE_POLL_SECONDS)

    def _claim(self) -> None:
        now = time.monotonic()
        if now < self._paused_until:
            return
        due = [message for at, message in self._parked if at <= now]
        if not due and not self._waiting:
            return
        candidates = due + list(self._waiting)
        room = self.recorder.slots.take(len(candidates))
        if not room:
            return
        batch = candidates[:room]
        self._parked = [(at, m) for at, m in self._parked if not any(m is b for b in batch)]
        for _ in range(max(0, room - len(due))):
            if self._waiting:
                self._waiting.popleft()
        try:
            verdicts = self.recorder.claim(self, batch)
        except Exception as exc:
            self.recorder.slots.give(room)
            self._waiting.extendleft(reversed(batch))
            self._paused_until = now + self._backoff
            logger.warning("Could not start %d tasks (%s); trying again in %.1fs", len(batch), exc, self._backoff)
            self._backoff = min(self._backoff * 2, CLAIM_BACKOFF_MAX_SECONDS)
            return
        self._backoff = CLAIM_BACKOFF_SECONDS
        acks, nacks, unused = [], [], 0
        for message in batch:
            verdict = verdicts[id(message)]
            if verdict == "started":
                self._ready.append(message)
                continue
            unused += 1
            if verdict == "busy":
                if getattr(message, "redelivered", False):
                    # Maybe the very delivery the running worker holds, come back after a lost
                    # connection: keep it until that run ends (ack) or its worker is gone (run).
                    self._parked.append((now + PARK_SECONDS, message))
                else:
                    # A second publish: the running worker holds its own delivery, which
                    # RabbitMQ gives back if that worker dies. This copy is not needed.
                    acks.append(message)
            elif verdict == "finished":
                acks.append(message)
            else:  # gave up, missing, unknown task: dead-letter it
                nacks.append(message)
        if unused:
            self.recorder.slots.give(unused)
        if acks or nacks:
            self.inner.settle(acks, nacks)

    # --- what Dramatiq calls -------------------------------------------------------------

    def ack(self, message: MessageProxy) -> None:
        if getattr(message, "_conveyor_outcome", None) is None:
            self.inner.settle([message], [])
        # else: the recorder settles it once the run's outcome is committed

    def nack(self, message: MessageProxy) -> None:
        if getattr(message, "_conveyor_outcome", None) is None:
            metrics.DEAD_LETTERS.labels(reason="unknown_task").inc()
            self.inner.settle([], [message])

    def requeue(self, messages: Iterable[MessageProxy]) -> None:
        """Claimed messages Dramatiq never ran (a worker stopping): their tasks go back to READY."""
        self.recorder.release(list(messages))

    def close(self) -> None:
        self.recorder.release(list(self._ready))
        self._ready.clear()
        self._waiting.clear()
        self._parked.clear()
        self.inner.close()

    def settle(self, acks: Sequence[MessageProxy], nacks: Sequence[MessageProxy]) -> None:
        self.inner.settle(acks, nacks)
