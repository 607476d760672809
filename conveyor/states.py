"""Every change of a task's status, each checking inside itself that the change is allowed.

    READY ──start──► RUNNING ──succeed──► SUCCESSFUL
      ▲                 │
      │  fail_attempt   ├──fail_attempt(final)──► FAILED ──retry──► READY
      └─────────────────┘                            ▲
    READY ──cancel──► CANCELLED ──retry──► READY     │
    READY / RUNNING / FAILED ──dead_letter──────────┘

The API, the admin, the worker and the scheduler all come here, so they cannot disagree
about what is allowed: callers never look at a status first. A change that is not
allowed raises (NotCancellable, NotRetryable: HTTP 409) or, on the worker's side,
returns None so the worker can skip the message.

The worker's writes are its hot path: each is one conditional UPDATE (atomic without a
transaction or a SELECT ... FOR UPDATE round trip), with JSON list appends and
timestamps done by the database, built once per database vendor.
"""

import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from conveyor import catalog, outbox, sql
from conveyor.core.models import TaskRecord, TaskStatus
from conveyor.errors import NotCancellable, NotRetryable, TaskNotFound
from conveyor.publisher import publish_after_commit

TABLE = TaskRecord._meta.db_table
CANCELLABLE = (TaskStatus.READY,)
RETRYABLE = (TaskStatus.FAILED, TaskStatus.CANCELLED)
# A dead letter never overwrites a result that was reached.
DEAD_LETTER_FROM = (TaskStatus.READY, TaskStatus.RUNNING, TaskStatus.FAILED)
REASON_LENGTH = TaskRecord._meta.get_field("failure_reason").max_length


@dataclass(frozen=True, slots=True)
class Started:
    """What start() recorded: the attempt's number and times, and every worker that took the task."""

    attempts: int
    started_at: datetime
    last_attempted_at: datetime
    worker_ids: list[str]


# --- the worker ---------------------------------------------------------------------


def start(task_id: Any, worker_id: str, *, redelivered: bool = True) -> Started | None:
    """READY -> RUNNING, one more attempt. None when the task may not start (the caller skips it).

    A RUNNING task is taken again only from a redelivered message: a worker killed
    mid-task leaves its task RUNNING and RabbitMQ redelivers it. A fresh message for
    a RUNNING task is a duplicate publish while another worker runs it.
    """
    with connection.cursor() as cursor:
        cursor.execute(_start_sql(connection.vendor, redelivered), [json.dumps(worker_id), sql.task_id(task_id)])
        row = cursor.fetchone()
    if row is None:
        return None
    attempts, started_at, last_attempted_at, worker_ids = row
    return Started(attempts, sql.to_datetime(started_at), sql.to_datetime(last_attempted_at), sql.from_json(worker_ids))


def status(task_id: Any) -> str | None:
    """The task's status, or None when there is no such task."""
    return TaskRecord.objects.filter(id=task_id).values_list("status", flat=True).first()


def succeed(task_id: Any, return_value: Any) -> datetime | None:
    """RUNNING -> SUCCESSFUL with its return value. Returns finished_at (None: it was not RUNNING)."""
    return _returning(_succeed_sql(connection.vendor), [json.dumps(return_value), sql.task_id(task_id)])


def fail_attempt(task_id: Any, error: dict, *, final: bool, reason: str = "") -> datetime | None:
    """RUNNING -> FAILED (final) or back to READY for a retry, appending the error.

    Returns finished_at (None for a retry, or when the task was not RUNNING).
    """
    return _returning(
        _fail_sql(connection.vendor, final), [json.dumps(error), reason[:REASON_LENGTH], sql.task_id(task_id)]
    )


def dead_letter(task_id: Any, reason: str) -> bool:
    """The task's message went to the dead-letter queue: FAILED with the reason. False if it had finished."""
    return bool(
        TaskRecord.objects.filter(id=task_id, status__in=DEAD_LETTER_FROM).update(
            status=TaskStatus.FAILED, finished_at=timezone.now(), failure_reason=reason[:REASON_LENGTH]
        )
    )


def set_progress(task_id: Any, progress: Any) -> bool:
    """Record progress (any JSON value) on a RUNNING task. False if it is not running."""
    return bool(TaskRecord.objects.filter(id=task_id, status=TaskStatus.RUNNING).update(progress=progress))


# --- operators: the API and the admin ---------------------------------------------------


def cancel(task_id: Any, *, reason: str) -> TaskRecord:
    """READY -> CANCELLED. Raises TaskNotFound, or NotCancellable when it is not READY."""
    with transaction.atomic():
        record = _locked(task_id)
        if record.status not in CANCELLABLE:
            raise NotCancellable(f"task is {record.status}; only READY tasks can be cancelled")
        record.status = TaskStatus.CANCELLED
        record.finished_at = timezone.now()
        record.failure_reason = reason[:REASON_LENGTH]
        record.save(update_fields=["status", "finished_at", "failure_reason"])
    return record


def cancel_many(task_ids: Iterable[Any], *, reason: str) -> int:
    """Cancel those of the tasks that are READY; returns how many were."""
    return TaskRecord.objects.filter(id__in=list(task_ids), status__in=CANCELLABLE).update(
        status=TaskStatus.CANCELLED, finished_at=timezone.now(), failure_reason=reason[:REASON_LENGTH]
    )


def retry(task_id: Any) -> TaskRecord:
    """FAILED or CANCELLED -> READY, published again after commit (same id; its errors are kept).

    Raises TaskNotFound, NotRetryable when the status does not allow it, and UnknownTask
    when the task is no longer in the catalog (it could not run).
    """
    now = timezone.now()
    with transaction.atomic():
        record = _locked(task_id)
        if record.status not in RETRYABLE:
            raise NotRetryable(f"task is {record.status}; only FAILED or CANCELLED tasks can be retried")
        catalog.get(record.task_path)
        record.status = TaskStatus.READY
        record.finished_at = None
        record.failure_reason = ""
        record.run_after = None
        record.save(update_fields=["status", "finished_at", "failure_reason", "run_after"])
        publish_after_commit(outbox.add([record], now))
    return record


# --- helpers ---------------------------------------------------------------------------


def _locked(task_id: Any) -> TaskRecord:
    try:
        return TaskRecord.objects.select_for_update().get(id=task_id)
    except (TaskRecord.DoesNotExist, ValueError, ValidationError):  # not found, or not a UUID
        raise TaskNotFound(f"no task {task_id}") from None


def _returning(statement: str, params: list) -> datetime | None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        row = cursor.fetchone()
    return sql.to_datetime(row[0]) if row else None


# The statements are built once per database vendor: string formatting on every task
# showed up in the worker's profile.
@functools.cache
def _start_sql(vendor: str, redelivered: bool) -> str:
    ready, running = TaskStatus.READY.value, TaskStatus.RUNNING.value
    allowed = f"('{ready}', '{running}')" if redelivered else f"('{ready}')"
    return (
        f"UPDATE {TABLE} SET status = '{running}', attempts = attempts + 1, "
        f"started_at = COALESCE(started_at, {sql.now()}), last_attempted_at = {sql.now()}, "
        f"worker_ids = {sql.append_json('worker_ids')} "
        f"WHERE id = %s AND status IN {allowed} RETURNING attempts, started_at, last_attempted_at, worker_ids"
    )


@functools.cache
def _succeed_sql(vendor: str) -> str:
    return (
        f"UPDATE {TABLE} SET status = '{TaskStatus.SUCCESSFUL.value}', return_value = {sql.json_param()}, "
        f"finished_at = {sql.now()} WHERE id = %s AND status = '{TaskStatus.RUNNING.value}' RETURNING finished_at"
    )


@functools.cache
def _fail_sql(vendor: str, final: bool) -> str:
    status = TaskStatus.FAILED.value if final else TaskStatus.READY.value
    finished = sql.now() if final else "NULL"
    return (
        f"UPDATE {TABLE} SET status = '{status}', errors = {sql.append_json('errors')}, "
        f"finished_at = {finished}, failure_reason = %s "
        f"WHERE id = %s AND status = '{TaskStatus.RUNNING.value}' RETURNING finished_at"
    )
