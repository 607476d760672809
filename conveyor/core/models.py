"""The durable state of Conveyor: one row per task, the outbox, API tokens (schedules: below)."""

import uuid

from django.db import models
from django.db.models import Q

from conveyor.status import (  # noqa: F401  (their home; re-exported)
    FINISHED_STATUSES,
    OPEN,
    OPEN_STATUSES,
    TaskSource,
    TaskStatus,
)


class ApiToken(models.Model):
    """A bearer token. Only the SHA-256 of the secret is stored."""

    SCOPES = ("read", "write", "admin")

    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, help_text="First characters, to recognise a token")
    key_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_admin(self) -> bool:
        return "admin" in self.scopes

    def has_scope(self, scope: str) -> bool:
        # admin implies write implies read.
        order = {"read": 0, "write": 1, "admin": 2}
        return any(order.get(s, -1) >= order[scope] for s in self.scopes)


class TaskRecord(models.Model):
    """One task accepted by any path (API, django.tasks, scheduler).

    Field names follow django.tasks.TaskResult where it has them.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Indexed by task_path_idx below, not db_index (which adds a second, LIKE-pattern index).
    task_path = models.CharField(max_length=200)
    queue_name = models.CharField(max_length=100, default="default")
    priority = models.SmallIntegerField(default=0)
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=TaskStatus.choices, default=TaskStatus.READY)
    # "open" for READY and RUNNING, else the status (conveyor.status.status_group): what the
    # status index is on, so that starting a task changes no indexed column. Kept in step
    # with `status` by a database trigger (migration 0004), whoever writes the row. Not a
    # GeneratedField: Django's checks of one need a database connection on PostgreSQL, and
    # `manage.py check --deploy` must run without one.
    status_group = models.CharField(max_length=10, default=OPEN, editable=False)
    attempts = models.PositiveIntegerField(default=0)
    return_value = models.JSONField(null=True, blank=True)
    # One entry per failed attempt: {"exception_class_path", "traceback", "attempt", "at"}.
    errors = models.JSONField(default=list, blank=True)
    # Errors left out of `errors` (which keeps the first and the latest; see conveyor.states).
    dropped_errors = models.PositiveIntegerField(default=0)
    # Why the task ended FAILED without a normal failure (dead-lettered, cancelled...).
    failure_reason = models.CharField(max_length=200, blank=True, default="")
    progress = models.JSONField(null=True, blank=True)
    enqueued_at = models.DateTimeField(auto_now_add=True)
    run_after = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    last_attempted_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    worker_ids = models.JSONField(default=list, blank=True)
    # The worker process running it now (a WorkerProcess id; RUNNING only). A RUNNING task is
    # taken over only when this worker's lease ran out, never because a message came again.
    worker = models.CharField(max_length=100, null=True, blank=True)
    # Times a worker process died while running it; at CONVEYOR_MAX_WORKER_DEATHS it is FAILED.
    worker_deaths = models.PositiveSmallIntegerField(default=0)
    # Dramatiq's retry count in the current budget (message option "retries"); a manual retry resets it.
    retries = models.PositiveSmallIntegerField(default=0)
    # task_owner_idx starts with owner: a separate FK index would only slow every write.
    owner = models.ForeignKey(
        ApiToken, null=True, blank=True, on_delete=models.SET_NULL, related_name="tasks", db_index=False
    )
    source = models.CharField(max_length=10, choices=TaskSource.choices, default=TaskSource.API)
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)
    backend = models.CharField(max_length=50, default="default")
    # Set on tasks the scheduler fired: which schedule, for which fire time (see conveyor.scheduling).
    schedule_name = models.CharField(max_length=200, null=True, blank=True)
    fire_time = models.DateTimeField(null=True, blank=True)
    # The workflow step it runs (a WorkflowStep id), if any. Not a foreign key and not
    # indexed: the worker reads it back when it records an outcome (RETURNING), and an
    # index would cost every task insert; the step points at its task for the other way.
    step_id = models.BigIntegerField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-enqueued_at", "-id"]
        indexes = [
            models.Index(fields=["-enqueued_at", "-id"], name="task_list_idx"),
            models.Index(fields=["status_group", "-enqueued_at"], name="task_group_idx"),
            models.Index(fields=["owner", "-enqueued_at"], name="task_owner_idx"),
            models.Index(fields=["task_path", "-enqueued_at"], name="task_path_idx"),
            # The dashboard's deferred tasks by due time. Partial, so only deferred and retried
            # tasks pay for it; on status_group, not status, so starting a task stays a HOT update.
            models.Index(
                fields=["run_after"],
                name="task_deferred_idx",
                condition=Q(status_group=OPEN, run_after__isnull=False),
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="task_idempotency_key_unique",
            )
        ]

    def __str__(self):
        return f"{self.task_path} {self.id} {self.status}"


class WorkerProcess(models.Model):
    """A worker process that is, or was recently, alive: its lease is `seen_at` + CONVEYOR_WORKER_LEASE_SECONDS.

    Each process writes its row when it boots and renews `seen_at` every few seconds; a
    clean exit deletes it. A RUNNING task whose worker has no live row is taken over.
    """

    id = models.CharField(primary_key=True, max_length=100, help_text="hostname:random:pid")
    hostname = models.CharField(max_length=100)
    pid = models.PositiveIntegerField()
    # Where `pid` means something: boot id, PID namespace and the process's start time, so a
    # process on the same host can tell for certain that this one is gone.
    host_key = models.CharField(max_length=200, default="", blank=True)
    pid_started = models.BigIntegerField(default=0)
    threads = models.PositiveSmallIntegerField(default=0)
    queues = models.JSONField(default=list, blank=True)
    started_at = models.DateTimeField()
    seen_at = models.DateTimeField()
    # An operator asked it to take nothing new (the dashboard's "quiet"); it finishes what it runs.
    quiet = models.BooleanField(default=False)
    # What it runs now, as its last heartbeat reported: [{"id", "task", "queue", "started_at"}].
    running = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["hostname", "pid"]

    def __str__(self):
        return self.id


class QueueState(models.Model):
    """A queue's operator-set state: paused or not (conveyor.queues owns it).

    A row exists once a queue was paused at least once; no row means running.
    """

    name = models.CharField(primary_key=True, max_length=100)
    paused = models.BooleanField(default=False)
    changed_at = models.DateTimeField()
    changed_by = models.CharField(max_length=150, blank=True, default="")

    def __str__(self):
        return f"{self.name} ({'paused' if self.paused else 'running'})"


class Throughput(models.Model):
    """Runs a worker process ended in one time bucket, as its heartbeat reported them.

    What the dashboard's processed/failed graph reads (conveyor.throughput): figures from
    the database, so every web replica draws the same graph.
    """

    id = models.BigAutoField(primary_key=True)
    at = models.DateTimeField(help_text="Start of the bucket")
    worker = models.CharField(max_length=100)
    processed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["at", "worker"], name="throughput_bucket_unique")]


class OutboxEntry(models.Model):
    """A task that is committed but not yet confirmed by the broker.

    Written in the same transaction as its TaskRecord. Deleted once RabbitMQ has
    confirmed the message. `locked_until` is a lease: whoever holds it may publish;
    when it runs out (the holder died, the broker was down) any relay may take it.
    """

    id = models.BigAutoField(primary_key=True)
    task = models.ForeignKey(TaskRecord, on_delete=models.CASCADE, related_name="+")
    available_at = models.DateTimeField(db_index=True)
    locked_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["available_at", "locked_until"], name="outbox_due_idx")]


# Schedules and their fires live with the scheduling code; this import registers them
# under this app label.
from conveyor.scheduling.models import Fire, Schedule  # noqa: E402,F401
from conveyor.workflows.models import Workflow, WorkflowStep  # noqa: E402,F401
