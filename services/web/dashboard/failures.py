"""Failed and dead-lettered tasks, grouped by task and exception class, with retry by group."""

from django.contrib import messages
from django.db import connection
from django.db.models.expressions import RawSQL
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from conveyor.core.models import TaskRecord
from conveyor.status import TaskStatus
from services.web.dashboard import access, filters, queue_figures, tasks, timeouts

GROUPS_SHOWN = 200


def groups() -> list[dict]:
    """FAILED tasks by (task, exception class of the latest error, failure reason): count and latest."""
    table = TaskRecord._meta.db_table
    exception = filters.last_exception_sql()
    sql = (
        f"SELECT task_path, {exception} AS exception, failure_reason, COUNT(*), MAX(finished_at) "
        f"FROM {table} WHERE status_group = %s "
        "GROUP BY task_path, exception, failure_reason ORDER BY COUNT(*) DESC, task_path LIMIT %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [TaskStatus.FAILED, GROUPS_SHOWN])
        rows = cursor.fetchall()
    found = []
    for task_path, exception_path, reason, count, latest in rows:
        task_filter = filters.TaskFilter(status=TaskStatus.FAILED, task=task_path, exception=exception_path or "")
        found.append(
            {
                "task": task_path,
                "exception": exception_path,
                "reason": reason,
                "count": count,
                "latest": latest,
                "filter": task_filter,
                "url": tasks.list_url(task_filter),
            }
        )
    return found


@access.viewer
def failed(request: HttpRequest) -> HttpResponse:
    too_slow, found = False, []
    try:
        with timeouts.bounded(filters.SEARCH_TIMEOUT_MS):
            found = groups()
    except timeouts.TooSlow:
        too_slow = True
    figures = queue_figures.current()
    return render(
        request,
        "dashboard/failed.html",
        {
            "groups": found,
            "too_slow": too_slow,
            "dead_letters": figures.dead_letters if figures else None,
            "can_act": access.may_act(request.user),
        },
    )


@access.operator
def retry_group(request: HttpRequest) -> HttpResponse:
    """Retry every FAILED task of one group (task, exception class, reason), up to the bulk limit."""
    task_filter = filters.TaskFilter.from_query(request.POST)
    if task_filter.problems:
        messages.error(request, f"Nothing done: {'; '.join(task_filter.problems)}.")
        return redirect("dashboard:failed")
    task_filter.status = TaskStatus.FAILED
    if not task_filter.task:
        messages.error(request, "Which task's failures? (task is missing)")
        return redirect("dashboard:failed")
    queryset = task_filter.queryset()
    # A group is (task, exception, reason), as groups() makes them: "" is the group of
    # tasks with no recorded error, not "any exception".
    if "exception" in request.POST and not task_filter.exception:
        queryset = queryset.annotate(last_exception=RawSQL(filters.last_exception_sql(), [])).filter(last_exception="")
    if "reason" in request.POST:
        queryset = queryset.filter(failure_reason=request.POST["reason"])
    done, refused, left = tasks.run_on_matching(request, "retry", queryset)
    messages.success(request, f"Retried {done} task(s) of {task_filter.task}.")
    for reason, times in refused.items():
        messages.warning(request, f"Left alone: {times} task(s): {reason}")
    if left:
        messages.warning(request, f"{left:,}+ more match; each click acts on at most {tasks.BULK_LIMIT:,}.")
    return redirect("dashboard:failed")
