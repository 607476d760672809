"""Worker processes from their heartbeats: alive or late, what each runs now; quiet and wake."""

from dataclasses import dataclass

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from conveyor import workers
from conveyor.core.models import WorkerProcess
from services.web.dashboard import access


@dataclass
class WorkerRow:
    process: WorkerProcess
    alive: bool
    seen_seconds_ago: float


def rows() -> list[WorkerRow]:
    now = timezone.now()
    lease = workers.lease()
    return [
        WorkerRow(process, now - process.seen_at <= lease, (now - process.seen_at).total_seconds())
        for process in WorkerProcess.objects.order_by("hostname", "pid")
    ]


@access.viewer
def worker_list(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/workers.html", {"rows": rows(), "can_act": access.may_act(request.user)})


@access.viewer
def worker_fragment(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/_workers.html", {"rows": rows(), "can_act": access.may_act(request.user)})


@access.operator
def set_quiet(request: HttpRequest, worker_id: str) -> HttpResponse:
    value = request.POST.get("quiet", "")
    if value not in ("true", "false"):
        messages.error(request, "quiet must be true or false.")
        return redirect("dashboard:workers")
    quiet = value == "true"
    if workers.set_quiet(worker_id, quiet):
        if quiet:
            messages.success(request, f"{worker_id}: quiet; it finishes what it runs and takes nothing new.")
        else:
            messages.success(request, f"{worker_id}: takes work again.")
    else:
        messages.error(request, f"{worker_id}: no such worker process (it stopped).")
    return redirect("dashboard:workers")
