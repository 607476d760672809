"""The overview: processed and failed per second over the last hour, totals, queues, workers; live."""

from datetime import timedelta

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone

from conveyor import throughput
from conveyor.core.models import TaskRecord
from conveyor.status import TaskStatus
from services.web.dashboard import access, counts, filters, queue_figures, workers

WINDOW = timedelta(hours=1)
# How often the page asks again (seconds); the worker heartbeat that feeds the graph is 5 s.
REFRESH_SECONDS = 3


def totals() -> list[tuple[str, counts.Count]]:
    """Tasks by status: exact up to counts.EXACT_UP_TO each, estimated above."""
    return [
        (status, counts.bounded(filters.by_status(TaskRecord.objects.all(), status))) for status in TaskStatus.values
    ]


def _context(request: HttpRequest) -> dict:
    return {
        "totals": totals(),
        "figures": queue_figures.current(),
        "rows": workers.rows(),
        "can_act": access.may_act(request.user),
        "refresh_seconds": REFRESH_SECONDS,
        "exact_up_to": f"{counts.EXACT_UP_TO:,}",
    }


@access.viewer
def overview(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/overview.html", _context(request))


@access.viewer
def overview_fragment(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/_overview.html", _context(request))


@access.viewer
def series(request: HttpRequest) -> JsonResponse:
    """The graph's points: {"at": [unix seconds], "processed": [per s], "failed": [per s], "totals": {...}}."""
    points = throughput.series(timezone.now() - WINDOW)
    return JsonResponse(
        {
            "at": [int(point["at"].timestamp()) for point in points],
            "processed": [point["processed"] for point in points],
            "failed": [point["failed"] for point in points],
            "bucket_seconds": throughput.BUCKET_SECONDS,
            "totals": throughput.totals(points),
        }
    )
