"""Deferred tasks by due time, the schedules with their next and last fire, and the fire history."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from conveyor.core.models import TaskRecord
from conveyor.errors import ConveyorError
from conveyor.scheduling import control, firing
from conveyor.scheduling.models import Fire, FireOutcome, Schedule
from conveyor.status import OPEN, TaskStatus
from services.web.dashboard import access, actions

SHOWN = 50


def deferred(now, after: str = ""):
    """READY tasks not yet due, soonest first (the partial index task_deferred_idx)."""
    queryset = TaskRecord.objects.filter(status_group=OPEN, run_after__isnull=False, run_after__gt=now).filter(
        status=TaskStatus.READY
    )
    return queryset.order_by("run_after", "id")


@access.viewer
def scheduled(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    outcome = request.GET.get("outcome", "")
    fires = Fire.objects.select_related("schedule").order_by("-fire_time", "-id")
    if outcome in FireOutcome.values:
        fires = fires.filter(outcome=outcome)
    return render(
        request,
        "dashboard/scheduled.html",
        {
            "deferred": list(deferred(now)[:SHOWN]),
            "shown": SHOWN,
            "schedules": Schedule.objects.order_by("name"),
            "fires": list(fires[:SHOWN]),
            "outcome": outcome,
            "outcomes": FireOutcome.values,
            "can_act": access.may_act(request.user),
        },
    )


@access.operator
def set_enabled(request: HttpRequest, name: str) -> HttpResponse:
    enabled = request.POST.get("enabled") == "true"
    done = f"{name}: {'enabled' if enabled else 'disabled'}."
    actions.carry_out(request, lambda: control.set_enabled(name, enabled), done)
    return redirect("dashboard:scheduled")


@access.operator
def run_now(request: HttpRequest, name: str) -> HttpResponse:
    try:
        result = firing.run_now(control.get(name))
        if result.workflow_id is not None:
            messages.success(request, f"{name}: workflow {result.workflow_id} started.")
        else:
            messages.success(request, f"{name}: task {result.task_id} enqueued.")
    except ConveyorError as exc:
        messages.error(request, f"{name}: not run: {exc.message}")
    return redirect("dashboard:scheduled")
