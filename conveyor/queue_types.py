"""How Conveyor's queues are declared: classic (one node) or quorum (replicated by Raft).

CONVEYOR_QUEUE_TYPE=quorum declares every work queue, delay queue (<queue>.DQ) and
dead-letter queue (<queue>.XQ) as a quorum queue. What changes from classic:

- no `x-max-priority`: RabbitMQ 3.x quorum queues refuse it and ignore message
  priorities (4.x has two levels, normal and high, with no declaration needed); a task's
  priority is then only an order inside each worker's buffer, not in the queue;
- `x-delivery-limit`: a message delivered that many times more (a worker dying while
  holding it, a pause giving it back) is dead-lettered to <queue>.XQ, never dropped;
  Conveyor's own rule (CONVEYOR_MAX_WORKER_DEATHS) fails the task long before;
- at-least-once dead-lettering (RabbitMQ 3.10+, with `x-overflow: reject-publish`): a
  dead letter leaves its queue only once <queue>.XQ has confirmed it.

Switching an existing deployment is a migration (docs: deploy/k8s/SCALING.md): RabbitMQ
refuses to declare a quorum queue under the name of a classic one.
"""

from typing import Any

from django.conf import settings

CLASSIC, QUORUM = "classic", "quorum"


def queue_type() -> str:
    return settings.CONVEYOR_QUEUE_TYPE


def work_queue_arguments() -> dict[str, Any]:
    """Arguments added to a work queue's and its delay queue's declaration (beyond Dramatiq's dead-letter target)."""
    if queue_type() != QUORUM:
        return {}
    return {
        "x-queue-type": QUORUM,
        "x-delivery-limit": settings.CONVEYOR_QUORUM_DELIVERY_LIMIT,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def dead_letter_queue_arguments() -> dict[str, Any]:
    """Arguments added to a dead-letter queue's declaration (beyond Dramatiq's message TTL)."""
    return {"x-queue-type": QUORUM} if queue_type() == QUORUM else {}
