"""The task list (filters, keyset pages) and its bulk actions: retry, cancel, delete."""

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode

from conveyor import catalog, queues, states
from conveyor.core.models import ApiToken
from conveyor.status import FINISHED_STATUSES, TaskStatus
from services.web.dashboard import access, counts, filters, timeouts

# One click acts on at most this many tasks ("everything matching" on a huge filter is
# done in several clicks, each told how many are left), in transactions of BATCH.
BULK_LIMIT = 10_000
BATCH = 500
ACTIONS = {
    # action -> statuses it can apply to (conveyor.states decides for each task), verb
    "retry": ((TaskStatus.FAILED, TaskStatus.CANCELLED), "Retried"),
    "cancel": ((TaskStatus.READY,), "Cancelled"),
    "delete": (FINISHED_STATUSES, "Deleted"),
}


def list_url(task_filter: filters.TaskFilter, **extra: str) -> str:
    params = {**task_filter.as_params(), **{k: v for k, v in extra.items() if v}}
    return reverse("dashboard:tasks") + (f"?{urlencode(params)}" if params else "")


@access.viewer
def task_list(request: HttpRequest) -> HttpResponse:
    task_filter = filters.TaskFilter.from_query(request.GET)
    cursor = request.GET.get("after", "")
    rows, next_cursor, too_slow, matching = [], "", False, None
    try:
        with timeouts.bounded(filters.SEARCH_TIMEOUT_MS):
            queryset = task_filter.queryset()
            rows, next_cursor = filters.page(queryset.select_related("owner"), cursor)
            if task_filter.active and not cursor and not next_cursor:
                # The first page holds every match: no second pass over the table to count them.
                matching = counts.Count(len(rows), True)
            elif task_filter.active:
                matching = counts.bounded(queryset)
    except timeouts.TooSlow:
        too_slow = True
    for problem in task_filter.problems:
        messages.warning(request, f"Filter ignored: {problem}")
    return render(
        request,
        "dashboard/tasks.html",
        {
            "filter": task_filter,
            "rows": rows,
            "next_url": list_url(task_filter, after=next_cursor) if next_cursor else "",
            "first_url": list_url(task_filter) if cursor else "",
            "too_slow": too_slow,
            "timeout_seconds": filters.SEARCH_TIMEOUT_MS / 1000,
            "matching": matching,
            "statuses": TaskStatus.values,
            "task_paths": _task_paths(),
            "queues": _queue_names(),
            "paused": queues.paused(),
            "owners": ApiToken.objects.order_by("name").values_list("id", "name", "prefix"),
            "can_act": access.may_act(request.user),
            "actions": list(ACTIONS),
        },
    )


def _task_paths() -> list[str]:
    return [entry.path for entry in catalog.entries()]


def _queue_names() -> list[str]:
    return list(settings.CONVEYOR_QUEUES)


@access.operator
def bulk_action(request: HttpRequest) -> HttpResponse:
    """POST action=retry|cancel|delete with ids=... (a selection) or scope=matching and the filter."""
    action = request.POST.get("action", "")
    task_filter = filters.TaskFilter.from_query(request.POST)
    back = request.POST.get("next") or list_url(task_filter)
    if not back.startswith("/dashboard/"):
        back = list_url(task_filter)
    if action not in ACTIONS:
        messages.error(request, f"Unknown action {action!r}.")
        return redirect(back)
    if task_filter.problems:
        # A filter read differently from what the operator saw would act on other tasks: refuse.
        messages.error(request, f"Nothing done: the filter is not valid ({'; '.join(task_filter.problems)}).")
        return redirect(back)
    statuses, verb = ACTIONS[action]
    if request.POST.get("scope") == "matching":
        done, refused, left = run_on_matching(request, action, task_filter.queryset().filter(status__in=statuses))
    else:
        ids = [value for value in request.POST.getlist("ids") if filters.is_uuid(value)][:BULK_LIMIT]
        if not ids:
            messages.warning(request, "No task selected.")
            return redirect(back)
        done, refused = run_on(request, action, ids)
        left = 0
    messages.success(request, f"{verb} {done} task(s).")
    for reason, times in refused.items():
        messages.warning(request, f"Left alone: {times} task(s): {reason}")
    if left:
        messages.warning(request, f"{left:,}+ more match; each click acts on at most {BULK_LIMIT:,}.")
    return redirect(back)


def run_on(request: HttpRequest, action: str, task_ids: list) -> tuple[int, dict[str, int]]:
    """Carry out `action` on these tasks through conveyor.states; (done, {reason: count left alone})."""
    done, refused = 0, {}
    for start in range(0, len(task_ids), BATCH):
        chunk = task_ids[start : start + BATCH]
        if action == "retry":
            count, why = states.retry_many(chunk)
        elif action == "cancel":
            count = states.cancel_many(chunk, reason=f"cancelled by {access.actor_name(request)}")
            why = {"not READY": len(chunk) - count} if len(chunk) > count else {}
        else:
            count, kept = states.delete_finished(chunk)
            why = {"not finished, or a workflow's step": kept} if kept else {}
        done += count
        for reason, times in why.items():
            refused[reason] = refused.get(reason, 0) + times
    return done, refused


def run_on_matching(request: HttpRequest, action: str, queryset) -> tuple[int, dict[str, int], int]:
    """`action` on everything the filter matches, up to BULK_LIMIT; (done, refused, how many more match)."""
    ids = list(queryset.order_by("-enqueued_at", "-id").values_list("id", flat=True)[: BULK_LIMIT + 1])
    more = len(ids) > BULK_LIMIT
    done, refused = run_on(request, action, ids[:BULK_LIMIT])
    # Counted after acting: what was retried, cancelled or deleted no longer matches.
    left = counts.bounded(queryset).value if more else 0
    return done, refused, left
