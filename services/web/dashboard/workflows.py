"""Workflows: the latest ones, and one with its steps; cancel and retry."""

from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode

from conveyor.status import TaskStatus
from conveyor.workflows import handle, progress
from conveyor.workflows.models import Workflow
from services.web.dashboard import access, actions, filters

PAGE_SIZE = 50


@access.viewer
def workflow_list(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status", "")
    queryset = Workflow.objects.select_related("owner").order_by("-created_at", "-id")
    if status in TaskStatus.values:
        queryset = queryset.filter(status=status)
    before = request.GET.get("before", "")
    if filters.is_uuid(before):
        # Keyset: the workflows after that one in (created_at, id) descending order.
        anchor = Workflow.objects.filter(id=before).values_list("created_at", flat=True).first()
        if anchor is not None:
            queryset = queryset.filter(Q(created_at__lt=anchor) | Q(created_at=anchor, id__lt=before))
    rows = list(queryset[: PAGE_SIZE + 1])
    next_url = ""
    if len(rows) > PAGE_SIZE:
        rows = rows[:PAGE_SIZE]
        params = {"before": str(rows[-1].id), **({"status": status} if status else {})}
        next_url = reverse("dashboard:workflows") + "?" + urlencode(params)
    return render(
        request,
        "dashboard/workflows.html",
        {
            "rows": rows,
            "status": status,
            "statuses": TaskStatus.values,
            "next_url": next_url,
            "can_act": access.may_act(request.user),
        },
    )


@access.viewer
def workflow_detail(request: HttpRequest, workflow_id) -> HttpResponse:
    workflow = Workflow.objects.select_related("owner").filter(id=workflow_id).first()
    if workflow is None:
        raise Http404("no such workflow")
    result = handle.describe(workflow)
    return render(
        request,
        "dashboard/workflow_detail.html",
        {
            "workflow": workflow,
            "result": result,
            "can_act": access.may_act(request.user),
            "finished": result.is_finished,
        },
    )


@access.operator
def cancel(request: HttpRequest, workflow_id) -> HttpResponse:
    done = "Workflow cancelled: steps not started will not start."
    actions.carry_out(request, lambda: progress.cancel(workflow_id), done, "Not cancelled: ")
    return _back(workflow_id)


@access.operator
def retry(request: HttpRequest, workflow_id) -> HttpResponse:
    done = "Workflow retried from its failed steps."
    actions.carry_out(request, lambda: progress.retry(workflow_id), done, "Not retried: ")
    return _back(workflow_id)


def _back(workflow_id) -> HttpResponse:
    """To the workflow's page, or to the list when it is gone (where the message is shown)."""
    if Workflow.objects.filter(id=workflow_id).exists():
        return redirect("dashboard:workflow", workflow_id=workflow_id)
    return redirect("dashboard:workflows")
