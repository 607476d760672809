"""The queues page and its pause and resume actions."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from conveyor import queues
from conveyor.errors import ConveyorError
from services.web.dashboard import access, queue_figures


@access.viewer
def queue_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "dashboard/queues.html",
        {"figures": queue_figures.current(), "can_act": access.may_act(request.user)},
    )


@access.viewer
def queue_fragment(request: HttpRequest) -> HttpResponse:
    """The queues table alone (htmx polls it)."""
    return render(
        request,
        "dashboard/_queues.html",
        {"figures": queue_figures.current(), "can_act": access.may_act(request.user)},
    )


@access.operator
def pause(request: HttpRequest, name: str) -> HttpResponse:
    try:
        queues.pause(name, by=access.actor_name(request))
        messages.success(request, f"Queue {name} paused: workers start nothing from it within a few seconds.")
    except ConveyorError as exc:
        messages.error(request, exc.message)
    return redirect(request.POST.get("next") if _local(request.POST.get("next")) else "dashboard:queues")


@access.operator
def resume(request: HttpRequest, name: str) -> HttpResponse:
    try:
        queues.resume(name, by=access.actor_name(request))
        messages.success(request, f"Queue {name} resumed.")
    except ConveyorError as exc:
        messages.error(request, exc.message)
    return redirect(request.POST.get("next") if _local(request.POST.get("next")) else "dashboard:queues")


def _local(url: str | None) -> bool:
    return bool(url) and url.startswith("/dashboard/") and "//" not in url
