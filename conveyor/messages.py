"""How a task record becomes a Dramatiq message on RabbitMQ."""

from typing import TYPE_CHECKING

import dramatiq

if TYPE_CHECKING:
    from conveyor.core.models import TaskRecord

# RabbitMQ priority queues are declared with x-max-priority=10 (settings.DRAMATIQ_BROKER).
BROKER_MAX_PRIORITY = 10


def broker_priority(django_priority: int) -> int:
    """Map Django's -100..100 (higher is more urgent) onto RabbitMQ's 0..10 (same direction).

    Dramatiq's own actor `priority` runs the other way (lower is more urgent) and only
    orders messages inside one worker; the broker priority is what RabbitMQ honours.
    """
    return round((django_priority + 100) * BROKER_MAX_PRIORITY / 200)


def build_message(record: "TaskRecord") -> dramatiq.Message:
    """The message for a task record. Its message_id is the task id, stable across retries.

    Its timestamp is when the task became runnable: enqueued, or due (a deferred task, a
    retry after its backoff), so a worker measures the wait from there. It carries the
    retries used so far, so Dramatiq's Retries keeps counting across retries published
    from the outbox.
    """
    options = {"broker_priority": broker_priority(record.priority)}
    if record.retries:
        options["retries"] = record.retries
    runnable = max(record.enqueued_at, record.run_after) if record.run_after else record.enqueued_at
    return dramatiq.Message(
        queue_name=record.queue_name,
        actor_name=record.task_path,
        args=tuple(record.args),
        kwargs=record.kwargs,
        options=options,
        message_id=str(record.id),
        message_timestamp=int(runnable.timestamp() * 1000),
    )
