from django.urls import path

from services.web.dashboard import (
    failures,
    overview,
    queue_views,
    scheduled,
    task_detail,
    tasks,
    workers,
    workflows,
)

app_name = "dashboard"

urlpatterns = [
    path("", overview.overview, name="overview"),
    path("fragments/overview", overview.overview_fragment, name="overview-fragment"),
    path("series.json", overview.series, name="series"),
    path("tasks/", tasks.task_list, name="tasks"),
    path("tasks/action", tasks.bulk_action, name="tasks-action"),
    path("tasks/<uuid:task_id>/", task_detail.task_detail, name="task"),
    path("tasks/<uuid:task_id>/retry", task_detail.retry, name="task-retry"),
    path("tasks/<uuid:task_id>/cancel", task_detail.cancel, name="task-cancel"),
    path("failed/", failures.failed, name="failed"),
    path("failed/retry", failures.retry_group, name="failed-retry"),
    path("scheduled/", scheduled.scheduled, name="scheduled"),
    path("schedules/<str:name>/enabled", scheduled.set_enabled, name="schedule-enabled"),
    path("schedules/<str:name>/run", scheduled.run_now, name="schedule-run"),
    path("queues/", queue_views.queue_list, name="queues"),
    path("fragments/queues", queue_views.queue_fragment, name="queues-fragment"),
    path("queues/<str:name>/pause", queue_views.pause, name="queue-pause"),
    path("queues/<str:name>/resume", queue_views.resume, name="queue-resume"),
    path("workers/", workers.worker_list, name="workers"),
    path("fragments/workers", workers.worker_fragment, name="workers-fragment"),
    path("workers/<str:worker_id>/quiet", workers.set_quiet, name="worker-quiet"),
    path("workflows/", workflows.workflow_list, name="workflows"),
    path("workflows/<uuid:workflow_id>/", workflows.workflow_detail, name="workflow"),
    path("workflows/<uuid:workflow_id>/cancel", workflows.cancel, name="workflow-cancel"),
    path("workflows/<uuid:workflow_id>/retry", workflows.retry, name="workflow-retry"),
]
