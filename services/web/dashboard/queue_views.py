"""The queues page and its pause and resume actions."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from conveyor import queues
from services.web.dashboard import access, actions, queue_figures


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
    done = f"Queue {name} paused: workers start nothing from it within a few seconds."
    actions.carry_out(request, lambda: queues.pause(name, by=access.actor_name(request)), done)
    return _back(request)


@access.operator
def resume(request: HttpRequest, name: str) -> HttpResponse:
    actions.carry_out(request, lambda: queues.resume(name, by=access.actor_name(request)), f"Queue {name} resumed.")
    return _back(request)


def _back(request: HttpRequest) -> HttpResponse:
    """To the page the button was on (a dashboard page only), else the queues page."""
    return redirect(request.POST.get("next") if _local(request.POST.get("next")) else "dashboard:queues")


def _local(url: str | None) -> bool:
    return bool(url) and url.startswith("/dashboard/") and "//" not in url
