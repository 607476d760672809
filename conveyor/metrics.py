"""Prometheus metrics shared by the services. docs/observability.md ("Metrics") lists every name.

Every service runs several processes (gunicorn workers, Dramatiq processes), so the
metrics below live in prometheus_client's multiprocess mode there: the start scripts
set PROMETHEUS_MULTIPROC_DIR (and empty it) *before* Python starts, because the client
chooses its storage when it is first imported. Gauges therefore say how processes
combine (`multiprocess_mode`); outside multiprocess mode that argument is ignored.

Queue depth and the outbox backlog are not here: they are read at scrape time by the
collectors in conveyor/queue_metrics.py and conveyor/outbox_metrics.py.
"""

from prometheus_client import Counter, Gauge, Histogram

from conveyor.status import TaskStatus

# --- accepting tasks (web, scheduler, workers that enqueue) -------------------------

TASKS_ACCEPTED = Counter(
    "conveyor_tasks_accepted_total",
    "Tasks written durably (row and outbox entry), by task and source.",
    ["task", "source"],
)

# --- web -------------------------------------------------------------------------------

HTTP_REQUESTS = Counter(
    "conveyor_http_requests_total",
    "HTTP requests answered by the web service, by view (URL pattern), method and status.",
    ["view", "method", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "conveyor_http_request_duration_seconds",
    "Time to answer an HTTP request, from the first middleware to the response.",
    ["view", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)

# --- worker ----------------------------------------------------------------------------

# Final outcomes only: a failed attempt that will be retried is counted in TASK_RETRIES.
TASK_STATUSES = (TaskStatus.SUCCESSFUL.value, TaskStatus.FAILED.value)
TASKS_FINISHED = Counter(
    "conveyor_tasks_finished_total",
    "Tasks that reached a final status (SUCCESSFUL, or FAILED after their retries), by task and queue.",
    ["task", "queue", "status"],
)
TASK_DURATION = Histogram(
    "conveyor_task_duration_seconds",
    "Run time of one attempt of a task (every attempt, retried ones included).",
    ["task", "queue"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
TASK_QUEUE_WAIT = Histogram(
    "conveyor_task_queue_wait_seconds",
    "Time from enqueue (or the end of a retry backoff) to the start of an attempt.",
    ["task", "queue"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
TASKS_IN_PROGRESS = Gauge(
    "conveyor_tasks_in_progress",
    "Attempts running right now, by task and queue.",
    ["task", "queue"],
    multiprocess_mode="livesum",
)
TASK_RETRIES = Counter(
    "conveyor_task_retries_total",
    "Failed attempts that Dramatiq will retry after a backoff, by task and queue.",
    ["task", "queue"],
)
# Why a message went to <queue>.XQ: its task failed for good, names a task not in the catalog,
# has no task row, could not be decoded, killed its worker too often, returned a value that
# cannot be stored, or was refused by another middleware.
DEAD_LETTER_REASONS = (
    "retries_exhausted",
    "unknown_task",
    "no_record",
    "undecodable",
    "worker_died",
    "unstorable_result",
    "hard_time_limit",
    "skipped",
)
DEAD_LETTERS = Counter(
    "conveyor_dead_letters_total",
    "Messages dead-lettered to <queue>.XQ, by reason.",
    ["reason"],
)
WORKER_PROCESSES = Gauge(
    "conveyor_worker_processes",
    "Dramatiq worker processes alive in this container.",
    multiprocess_mode="livesum",
)
WORKER_THREADS = Gauge(
    "conveyor_worker_threads",
    "Worker threads (task slots) alive in this container.",
    multiprocess_mode="livesum",
)
