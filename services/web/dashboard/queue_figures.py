"""Every queue as the dashboard shows it: RabbitMQ's figures, the oldest wait, the paused state.

RabbitMQ's counts and consumers, and the oldest wait, are the cached figures /metrics
serves (conveyor.queue_metrics, read at most every CONVEYOR_QUEUE_METRICS_SECONDS per
process), so a dashboard polling every few seconds costs the broker nothing more; the
paused state is read from the database on every request.
"""

from dataclasses import dataclass

from django.conf import settings

from conveyor import queues
from services.web.exposition import queue_collector


@dataclass
class QueueRow:
    name: str
    ready: int | None
    unacked: int | None
    delayed: int | None
    dead_letter: int | None
    consumers: int | None
    oldest_wait: float | None
    paused: bool
    changed_by: str
    changed_at: object


@dataclass
class Figures:
    rows: list[QueueRow]
    readable: bool  # False: RabbitMQ or the database could not be read; counts unknown

    @property
    def dead_letters(self) -> dict[str, int | None]:
        return {row.name: row.dead_letter for row in self.rows}


def current() -> Figures:
    figures = queue_collector.figures()
    states = queues.states()
    rows = []
    for name in settings.CONVEYOR_QUEUES:
        state = states.get(name)
        depth = figures.depth if figures else {}
        rows.append(
            QueueRow(
                name=name,
                ready=depth.get((name, "ready")),
                unacked=depth.get((name, "unacked")),
                delayed=depth.get((name, "delayed")),
                dead_letter=depth.get((name, "dead_letter")),
                consumers=figures.consumers.get(name) if figures else None,
                oldest_wait=figures.ages.get(name) if figures else None,
                paused=bool(state and state.paused),
                changed_by=state.changed_by if state else "",
                changed_at=state.changed_at if state else None,
            )
        )
    return Figures(rows, figures is not None)
