"""Pausing and resuming queues: the one module that changes a queue's operator-set state.

A paused queue keeps its messages in RabbitMQ; no worker starts a task from it. Workers
read the paused set with every heartbeat (CONVEYOR_WORKER_HEARTBEAT_SECONDS), so a pause
or a resume takes effect within a few seconds, on every worker, and survives restarts
because it is a row, not a process's memory.
"""

from django.conf import settings
from django.utils import timezone

from conveyor.core.models import QueueState
from conveyor.errors import InvalidRequest


class UnknownQueue(InvalidRequest):
    """No queue of that name is configured (CONVEYOR_QUEUES)."""

    code = "unknown_queue"


def _known(name: str) -> str:
    if name not in settings.CONVEYOR_QUEUES:
        raise UnknownQueue(
            f"no queue {name!r}; the queues are {', '.join(settings.CONVEYOR_QUEUES)}",
            details={"queue": name, "allowed": list(settings.CONVEYOR_QUEUES)},
        )
    return name


def pause(name: str, *, by: str = "") -> None:
    """Stop workers from starting tasks of this queue (idempotent)."""
    _set(_known(name), True, by)


def resume(name: str, *, by: str = "") -> None:
    """Let workers start tasks of this queue again (idempotent)."""
    _set(_known(name), False, by)


def _set(name: str, paused: bool, by: str) -> None:
    QueueState.objects.update_or_create(
        name=name, defaults={"paused": paused, "changed_at": timezone.now(), "changed_by": by[:150]}
    )


def paused() -> set[str]:
    """Names of the paused queues."""
    return set(QueueState.objects.filter(paused=True).values_list("name", flat=True))


def states() -> dict[str, QueueState]:
    """Every queue that has a state row, by name."""
    return {state.name: state for state in QueueState.objects.all()}
