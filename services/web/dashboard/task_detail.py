"""One task: arguments, result, progress, every kept attempt with its traceback, timeline, origin."""

import json
from datetime import datetime

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.dateparse import parse_datetime

from conveyor import queues, states
from conveyor.core.models import TaskRecord
from conveyor.scheduling.models import Schedule
from conveyor.workflows.models import WorkflowStep
from services.web.dashboard import access, actions


def _pretty(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def _get(task_id) -> TaskRecord:
    try:
        return TaskRecord.objects.select_related("owner").get(id=task_id)
    except TaskRecord.DoesNotExist:
        raise Http404("no such task") from None


def _moment(value) -> datetime | None:
    """A recorded error's time (ISO 8601 text in the JSON) as a datetime; None if it has none."""
    if isinstance(value, datetime):
        return value
    try:
        return parse_datetime(value) if isinstance(value, str) else None
    except ValueError:
        return None


def timeline(record: TaskRecord) -> list[tuple]:
    """(time, what) in time order: enqueued, due, started, each failed attempt, finished.

    Times are datetimes (an error's own is text in the JSON: parsed), so they sort as times
    and display alike; an event without a time comes last.
    """
    events = [(record.enqueued_at, "enqueued")]
    if record.run_after and record.run_after != record.enqueued_at:
        events.append((record.run_after, "due (deferred, a retry's backoff, or retried by hand)"))
    if record.started_at:
        events.append((record.started_at, "started"))
    for error in record.errors or []:
        at = _moment(error.get("at"))
        events.append((at, f"attempt {error.get('attempt', '?')} failed: {error.get('exception_class_path', '')}"))
    if record.last_attempted_at and record.last_attempted_at != record.started_at:
        events.append((record.last_attempted_at, "latest attempt started"))
    if record.finished_at:
        events.append((record.finished_at, f"finished {record.status}"))
    # Stable: events at the same time keep the order above.
    return sorted(events, key=lambda event: (event[0] is None, event[0] or record.enqueued_at))


@access.viewer
def task_detail(request: HttpRequest, task_id) -> HttpResponse:
    record = _get(task_id)
    step = WorkflowStep.objects.filter(id=record.step_id).first() if record.step_id is not None else None
    schedule = Schedule.objects.filter(name=record.schedule_name).first() if record.schedule_name else None
    return render(
        request,
        "dashboard/task_detail.html",
        {
            "task": record,
            "args": _pretty(record.args),
            "kwargs": _pretty(record.kwargs),
            "return_value": _pretty(record.return_value) if record.return_value is not None else "",
            "progress": _pretty(record.progress) if record.progress is not None else "",
            "errors": [{**error, "at": _moment(error.get("at"))} for error in record.errors or []],
            "timeline": timeline(record),
            "step": step,
            "queue_paused": record.queue_name in queues.paused(),
            "schedule": schedule,
            "can_act": access.may_act(request.user),
            "can_retry": record.status in states.RETRYABLE and record.step_id is None,
            "can_cancel": record.status in states.CANCELLABLE,
        },
    )


@access.operator
def retry(request: HttpRequest, task_id) -> HttpResponse:
    actions.carry_out(request, lambda: states.retry(task_id), "Retried: the task is READY again.", "Not retried: ")
    return _back(task_id)


@access.operator
def cancel(request: HttpRequest, task_id) -> HttpResponse:
    reason = f"cancelled by {access.actor_name(request)}"
    actions.carry_out(request, lambda: states.cancel(task_id, reason=reason), "Cancelled.", "Not cancelled: ")
    return _back(task_id)


def _back(task_id) -> HttpResponse:
    """To the task's page, or to the list when it is gone (where the message is shown)."""
    if TaskRecord.objects.filter(id=task_id).exists():
        return redirect("dashboard:task", task_id=task_id)
    return redirect("dashboard:tasks")
