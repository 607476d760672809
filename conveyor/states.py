"""Every change of a task's status, each checking inside itself that the change is allowed.

    READY ──claim──► RUNNING ──finish──► SUCCESSFUL
      ▲                │ │
      │ finish (retry) │ └──finish (final) / claim (worker died too often)──► FAILED ──retry──► READY
      └────────────────┘                                                     ▲
    READY ──cancel──► CANCELLED ──retry──► READY                             │
    READY / RUNNING / FAILED ──dead_letter───────────────────────────────────┘

The API, the admin, the worker and the scheduler all come here, so they cannot disagree
about what is allowed: callers never look at a status first. A change that is not
allowed raises (NotCancellable, NotRetryable: HTTP 409) or, on the worker's side, is
reported back so the worker can drop, park or dead-letter the message.

The worker's writes are its hot path and are made for many tasks at once: `claim` starts
every message a consumer has room for in one statement, `finish` records the end of
every run a worker process finished since its last commit in one statement (group
commit). On SQLite, a first local run, the same rules run one row at a time.

Who runs a task is a fact in its row (`worker`, a conveyor.workers process), never the
`redelivered` flag of a message: a RUNNING task is taken over only when its worker's
lease ran out (or its process is gone, seen from the same host). A takeover counts a
worker death; at CONVEYOR_MAX_WORKER_DEATHS the task is FAILED instead of run again.
"""

import enum
import functools
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from conveyor import catalog, outbox, sql
from conveyor.core.models import TaskRecord, WorkerProcess
from conveyor.errors import NotCancellable, NotRetryable, TaskNotFound
from conveyor.publisher import publish_after_commit
from conveyor.status import FINISHED_STATUSES, TaskStatus
from conveyor.workflows import progress

TABLE = TaskRecord._meta.db_table
WORKERS = WorkerProcess._meta.db_table
CANCELLABLE = (TaskStatus.READY,)
RETRYABLE = (TaskStatus.FAILED, TaskStatus.CANCELLED)
# A dead letter never overwrites a result that was reached.
DEAD_LETTER_FROM = (TaskStatus.READY, TaskStatus.RUNNING, TaskStatus.FAILED)
REASON_LENGTH = TaskRecord._meta.get_field("failure_reason").max_length
WORKER_DIED = "conveyor.errors.WorkerDied"
# A task retried again and again keeps a bounded history: the first attempts' errors (and
# workers) and the latest ones; `dropped_errors` counts the errors left out in between.
MAX_ERRORS, MAX_WORKER_IDS, KEEP_FIRST = 20, 20, 3


@dataclass(frozen=True, slots=True)
class Started:
    """A run that claim() started: the attempt's number and times, and every worker that took the task."""

    attempts: int
    started_at: datetime
    last_attempted_at: datetime
    worker_ids: list[str]


class Verdict(enum.Enum):
    """What claim() decided for one message."""

    STARTED = "started"  # RUNNING now, by this worker: run it
    GAVE_UP = "gave_up"  # its workers died too often: FAILED now; dead-letter the message
    FINISHED = "finished"  # already SUCCESSFUL, FAILED or CANCELLED: drop the message (ack)
    BUSY = "busy"  # RUNNING on a live worker (a duplicate): keep the message and ask again later
    MISSING = "missing"  # no such task: dead-letter the message


@dataclass(frozen=True, slots=True)
class Claimed:
    verdict: Verdict
    started: Started | None = None
    worker: str | None = None  # BUSY: the worker running it
    reason: str = ""  # GAVE_UP: the failure reason recorded


@dataclass(slots=True)
class Outcome:
    """How a run ended, to be written by finish()."""

    task_id: str
    status: TaskStatus  # SUCCESSFUL, FAILED (final) or READY (a retry is due at `run_after`)
    return_json: str | None = None  # SUCCESSFUL: the return value, already encoded as strict JSON
    error: dict | None = None  # a failed attempt's error entry
    reason: str = ""  # FAILED: why, in a sentence
    run_after: datetime | None = None  # READY: when the retry is due
    retries: int = 0  # Dramatiq's retry count after this run
    finished_at: datetime | None = field(default=None)  # set by finish()


# --- the worker ---------------------------------------------------------------------------


def claim(task_ids: Sequence[str], worker: str) -> dict[str, Claimed]:
    """Start the tasks of these messages on `worker`, in one statement; a Claimed for each id given.

    READY starts. RUNNING starts again only when the worker named on it is gone (no live
    row in conveyor.workers), which counts a worker death; at CONVEYOR_MAX_WORKER_DEATHS the
    task is FAILED instead (GAVE_UP). A RUNNING task on a live worker (or on no named
    worker) is BUSY: it must not run here now. Ids must be distinct.
    """
    if not task_ids:
        return {}
    given = {_key(task_id): task_id for task_id in task_ids}
    rows = _claim_rows(task_ids, worker)
    result = {}
    ends = []  # workflow steps whose task ended here (gave up) or had ended (a repeated report)
    for task_id, status, attempts, started_at, last_attempted_at, worker_ids, reason, step_id in rows:
        key = given[_key(task_id)]
        if status == TaskStatus.FAILED:
            result[key] = Claimed(Verdict.GAVE_UP, reason=reason)
            if step_id is not None:
                ends.append(progress.StepEnd(step_id, status, reason))
        else:
            started = Started(
                attempts, sql.to_datetime(started_at), sql.to_datetime(last_attempted_at), sql.from_json(worker_ids)
            )
            result[key] = Claimed(Verdict.STARTED, started)
    missed = [task_id for task_id in task_ids if task_id not in result]
    if missed:
        found = TaskRecord.objects.filter(id__in=missed).values_list(
            "id", "status", "worker", "step_id", "failure_reason"
        )
        for task_id, status, running_on, step_id, reason in found:
            if status in FINISHED_STATUSES:
                result[given[_key(task_id)]] = Claimed(Verdict.FINISHED)
                if step_id is not None:
                    ends.append(progress.StepEnd(step_id, status, reason))
            else:  # RUNNING on a live worker, or changed under us: ask again later
                result[given[_key(task_id)]] = Claimed(Verdict.BUSY, worker=running_on)
        for task_id in missed:
            result.setdefault(task_id, Claimed(Verdict.MISSING))
    if ends:
        # The claim statement committed on its own (the hot path has no transaction); the
        # workflow counts each step's end once (WorkflowStep.counted), so this also repairs
        # an end whose report was lost (a process killed between its two commits).
        with transaction.atomic():
            progress.steps_ended(ends)
    return result


def release(task_ids: Sequence[str], worker: str) -> int:
    """Give back runs claimed by `worker` that never started (a worker stopping): READY again."""
    if not task_ids:
        return 0
    return (
        TaskRecord.objects.filter(id__in=list(task_ids), status=TaskStatus.RUNNING, worker=worker)
        .exclude(attempts=0)
        .update(status=TaskStatus.READY, worker=None, attempts=F("attempts") - 1)
    )


def finish(outcomes: Sequence[Outcome], worker: str) -> list[Outcome]:
    """Record how runs of `worker` ended, all in one transaction; returns those written.

    A run is written only while its task is RUNNING on `worker`: a run another worker took
    over (this one was presumed dead) is not. Retries become READY with an outbox entry
    due at `run_after`, in the same transaction, so the retry exists only once the row
    says READY, and waits in the database rather than in a worker's memory.
    """
    if not outcomes:
        return []
    now = timezone.now()
    with transaction.atomic():
        finished = _finish_rows(outcomes, worker)
        written, ends = [], []
        for outcome in outcomes:
            key = _key(outcome.task_id)
            if key in finished:
                finished_at, step_id = finished[key]
                outcome.finished_at = sql.to_datetime(finished_at)
                written.append(outcome)
                if step_id is not None and outcome.status != TaskStatus.READY:
                    ends.append(progress.StepEnd(step_id, str(outcome.status), _why(outcome)))
        retries = [o.task_id for o in written if o.status == TaskStatus.READY]
        if retries:
            publish_after_commit(outbox.add_for(retries, now))
        # A workflow's next steps are written with this end, or not at all (conveyor.workflows.progress).
        progress.steps_ended(ends)
    return written


def status(task_id: Any) -> str | None:
    """The task's status, or None when there is no such task."""
    return TaskRecord.objects.filter(id=task_id).values_list("status", flat=True).first()


def dead_letter(task_id: Any, reason: str) -> bool:
    """The task's message went to the dead-letter queue: FAILED with the reason. False if it had finished."""
    with transaction.atomic():
        step_ids = list(
            TaskRecord.objects.select_for_update()
            .filter(id=task_id, status__in=DEAD_LETTER_FROM)
            .values_list("step_id", flat=True)
        )
        if not step_ids:
            return False
        TaskRecord.objects.filter(id=task_id).update(
            status=TaskStatus.FAILED, finished_at=timezone.now(), failure_reason=reason[:REASON_LENGTH], worker=None
        )
        if step_ids[0] is not None:
            progress.steps_ended([progress.StepEnd(step_ids[0], TaskStatus.FAILED, reason)])
    return True


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
        if record.step_id is not None:  # a workflow's step: the workflow ends CANCELLED
            progress.steps_ended([progress.StepEnd(record.step_id, TaskStatus.CANCELLED, reason)])
    return record


def cancel_many(task_ids: Iterable[Any], *, reason: str) -> int:
    """Cancel those of the tasks that are READY; returns how many were."""
    task_ids = list(task_ids)
    if not task_ids:
        return 0
    with transaction.atomic():
        rows = list(
            TaskRecord.objects.select_for_update()
            .filter(id__in=task_ids, status__in=CANCELLABLE)
            .order_by("id")
            .values_list("id", "step_id")
        )
        TaskRecord.objects.filter(id__in=[task_id for task_id, _ in rows]).update(
            status=TaskStatus.CANCELLED, finished_at=timezone.now(), failure_reason=reason[:REASON_LENGTH]
        )
        progress.steps_ended(
            [progress.StepEnd(step_id, TaskStatus.CANCELLED, reason) for _, step_id in rows if step_id is not None]
        )
    return len(rows)


def retry(task_id: Any, *, workflow_step: bool = False) -> TaskRecord:
    """FAILED or CANCELLED -> READY, published again after commit (same id; its errors are kept).

    The retry budget starts again (Dramatiq's retry count is reset). Raises TaskNotFound,
    NotRetryable when the status does not allow it or the task is a workflow's step (the
    workflow is retried instead: conveyor.workflows.progress.retry, which passes
    workflow_step=True), and UnknownTask when the task is no longer in the catalog.
    """
    now = timezone.now()
    with transaction.atomic():
        record = _locked(task_id)
        if (why := _not_retryable(record)) is not None:
            raise NotRetryable(why)
        if record.step_id is not None and not workflow_step:
            raise NotRetryable("this task is a workflow's step: retry the workflow (POST /api/v1/workflows/<id>/retry)")
        catalog.get(record.task_path)
        fields = _retried(now)
        for name, value in fields.items():
            setattr(record, name, value)
        record.save(update_fields=list(fields))
        publish_after_commit(outbox.add([record], now))
    return record


def _not_retryable(record: TaskRecord) -> str | None:
    """Why the task's status does not allow a retry, or None when it does."""
    if record.status not in RETRYABLE:
        return f"task is {record.status}; only FAILED or CANCELLED tasks can be retried"
    return None


def _retried(now: datetime) -> dict[str, Any]:
    """The fields a retry sets: READY again, with a fresh retry budget and death count."""
    return {
        "status": TaskStatus.READY,
        "finished_at": None,
        "failure_reason": "",
        # Waiting again from now on: the queue-age metric counts from here, not from the first enqueue.
        "run_after": now,
        "retries": 0,
        "worker_deaths": 0,
    }


def retry_many(task_ids: Iterable[Any]) -> tuple[int, dict[str, int]]:
    """Retry those of the tasks that may be (as `retry`, in one transaction); (retried, {reason: count refused}).

    Tasks that are not FAILED or CANCELLED, that are workflow steps, or whose task left
    the catalog are left as they are and counted under the reason.
    """
    task_ids = list(task_ids)
    refused: dict[str, int] = {}
    if not task_ids:
        return 0, refused
    now = timezone.now()
    with transaction.atomic():
        records = list(TaskRecord.objects.select_for_update().filter(id__in=task_ids).order_by("id"))
        chosen = []
        for record in records:
            reason = _not_retryable(record)
            if reason is None and record.step_id is not None:
                reason = "a workflow's step: retry the workflow"
            if reason is None and not catalog.exists(record.task_path):
                reason = f"{record.task_path} is no longer in the catalog"
            if reason is None:
                chosen.append(record)
            else:
                refused[reason] = refused.get(reason, 0) + 1
        missing = len(task_ids) - len(records)
        if missing:
            refused["no such task"] = missing
        if chosen:
            TaskRecord.objects.filter(id__in=[record.id for record in chosen]).update(**_retried(now))
            publish_after_commit(outbox.add(chosen, now))
    return len(chosen), refused


def delete_finished(task_ids: Iterable[Any]) -> tuple[int, int]:
    """Delete those of the tasks that are finished and not a workflow's step; (deleted, kept).

    An open task keeps its record (its message would find nothing to run); a workflow's
    step stays with its workflow, which the purge removes whole.
    """
    task_ids = list(task_ids)
    if not task_ids:
        return 0, 0
    _, by_model = TaskRecord.objects.filter(
        id__in=task_ids, status_group__in=FINISHED_STATUSES, step_id__isnull=True
    ).delete()
    # Only the task rows: delete() also counts what went with them (a pending outbox entry).
    deleted = by_model.get(TaskRecord._meta.label, 0)
    return deleted, len(task_ids) - deleted


# --- helpers ---------------------------------------------------------------------------


def _why(outcome: Outcome) -> str:
    """How a run failed, for its workflow's error: the exception and its message, else the reason."""
    error = outcome.error or {}
    if error.get("exception_class_path"):
        message = error.get("message", "")
        return f"{error['exception_class_path']}: {message}" if message else error["exception_class_path"]
    return outcome.reason


def _key(task_id: Any) -> str:
    return str(sql.task_id(task_id))


def _locked(task_id: Any) -> TaskRecord:
    try:
        return TaskRecord.objects.select_for_update().get(id=task_id)
    except (TaskRecord.DoesNotExist, ValueError, ValidationError):  # not found, or not a UUID
        raise TaskNotFound(f"no task {task_id}") from None


def _lease_seconds() -> float:
    return float(settings.CONVEYOR_WORKER_LEASE_SECONDS)


def _claim_rows(task_ids: Sequence[str], worker: str) -> list[tuple]:
    statement = _claim_sql(connection.vendor, settings.CONVEYOR_MAX_WORKER_DEATHS)
    # In the order the placeholders appear: the worker, its id as JSON, the ids, the lease.
    params, lease = [worker, json.dumps(worker)], _lease_seconds()
    with connection.cursor() as cursor:
        if sql.is_postgresql():
            cursor.execute(statement, [*params, [sql.task_id(t) for t in task_ids], lease])
            return cursor.fetchall()
        rows = []
        with transaction.atomic():
            for task_id in task_ids:
                cursor.execute(statement, [*params, sql.task_id(task_id), lease])
                rows.extend(cursor.fetchall())
        return rows


@functools.cache
def _claim_sql(vendor: str, max_deaths: int) -> str:
    ready, running, failed = TaskStatus.READY.value, TaskStatus.RUNNING.value, TaskStatus.FAILED.value
    takeover = f"t.status = '{running}'"
    give_up = f"({takeover} AND t.worker_deaths + 1 >= {int(max_deaths)})"
    postgresql = vendor == "postgresql"
    if postgresql:
        died = (
            "jsonb_build_object('exception_class_path', '" + WORKER_DIED + "', 'message', 'worker ' || "
            "COALESCE(t.worker, 'unknown') || ' stopped while running attempt ' || t.attempts, "
            "'traceback', '', 'attempt', t.attempts, 'at', now())"
        )
        errors = sql.append_bounded("t.errors", died, limit=MAX_ERRORS, keep_first=KEEP_FIRST)
        worker_ids = sql.append_bounded("t.worker_ids", "%s::jsonb", limit=MAX_WORKER_IDS, keep_first=KEEP_FIRST)
        lease_ok = "w.seen_at > now() - %s * interval '1 second'"
        target, which = f"{TABLE} AS t", "t.id = ANY(%s::uuid[])"
        reason = "'worker died ' || (t.worker_deaths + 1) || ' times while running it; dead-lettered'"
    else:
        died = (
            "json_object('exception_class_path', '" + WORKER_DIED + "', 'message', 'worker ' || "
            "COALESCE(t.worker, 'unknown') || ' stopped while running attempt ' || t.attempts, "
            f"'traceback', '', 'attempt', t.attempts, 'at', {sql.now()})"
        )
        errors = sql.append_bounded("t.errors", died, limit=MAX_ERRORS, keep_first=KEEP_FIRST)
        worker_ids = sql.append_bounded("t.worker_ids", "%s", limit=MAX_WORKER_IDS, keep_first=KEEP_FIRST)
        lease_ok = "w.seen_at > strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now', '-' || %s || ' seconds')"
        target, which = f"{TABLE} AS t", "t.id = %s"
        reason = "'worker died ' || (t.worker_deaths + 1) || ' times while running it; dead-lettered'"
    now = sql.now()
    statement = (
        f"UPDATE {target} SET "
        f"status = CASE WHEN {give_up} THEN '{failed}' ELSE '{running}' END, "
        f"worker_deaths = t.worker_deaths + CASE WHEN {takeover} THEN 1 ELSE 0 END, "
        f"attempts = t.attempts + CASE WHEN {give_up} THEN 0 ELSE 1 END, "
        f"started_at = COALESCE(t.started_at, {now}), "
        f"last_attempted_at = CASE WHEN {give_up} THEN t.last_attempted_at ELSE {now} END, "
        f"finished_at = CASE WHEN {give_up} THEN {now} ELSE NULL END, "
        f"failure_reason = CASE WHEN {give_up} THEN {reason} ELSE t.failure_reason END, "
        f"errors = CASE WHEN {takeover} THEN {errors} ELSE t.errors END, "
        f"dropped_errors = t.dropped_errors + CASE WHEN {takeover} AND {sql.is_full('t.errors', MAX_ERRORS)} "
        "THEN 1 ELSE 0 END, "
        f"worker = CASE WHEN {give_up} THEN NULL ELSE %s END, "
        f"worker_ids = CASE WHEN {give_up} THEN t.worker_ids ELSE {worker_ids} END "
        f"WHERE {which} AND (t.status = '{ready}' OR ({takeover} AND t.worker IS NOT NULL AND NOT EXISTS "
        f"(SELECT 1 FROM {WORKERS} AS w WHERE w.id = t.worker AND {lease_ok}))) "
        "RETURNING t.id, t.status, t.attempts, t.started_at, t.last_attempted_at, t.worker_ids, t.failure_reason, "
        "t.step_id"
    )
    if postgresql:
        return statement
    # SQLite's UPDATE takes no alias: the same statement with the columns unqualified.
    return re.sub(r"\bt\.", "", statement).replace(f"{TABLE} AS t", TABLE)


def _finish_rows(outcomes: Sequence[Outcome], worker: str) -> dict[str, tuple[Any, int | None]]:
    """{task id: (finished_at, step_id)} of the rows written."""
    statement = _finish_sql(connection.vendor)
    with connection.cursor() as cursor:
        if sql.is_postgresql():
            cursor.execute(
                statement,
                [
                    [sql.task_id(o.task_id) for o in outcomes],
                    [o.status.value if isinstance(o.status, TaskStatus) else o.status for o in outcomes],
                    [o.return_json for o in outcomes],
                    [None if o.error is None else json.dumps(o.error) for o in outcomes],
                    [o.reason[:REASON_LENGTH] for o in outcomes],
                    [o.run_after for o in outcomes],
                    [o.retries for o in outcomes],
                    worker,
                ],
            )
            return {_key(task_id): (finished_at, step_id) for task_id, finished_at, step_id in cursor.fetchall()}
        written = {}
        for o in outcomes:
            status = o.status.value if isinstance(o.status, TaskStatus) else o.status
            error = None if o.error is None else json.dumps(o.error)
            run_after = None if o.run_after is None else sql.when(o.run_after)
            reason = o.reason[:REASON_LENGTH]
            cursor.execute(
                statement,
                [status, status, o.return_json, error, error, error, status, reason, run_after, o.retries]
                + [sql.task_id(o.task_id), worker],
            )
            for task_id, finished_at, step_id in cursor.fetchall():
                written[_key(task_id)] = (finished_at, step_id)
        return written


@functools.cache
def _finish_sql(vendor: str) -> str:
    successful, ready, running = TaskStatus.SUCCESSFUL.value, TaskStatus.READY.value, TaskStatus.RUNNING.value
    now = sql.now()
    if vendor == "postgresql":
        return (
            f"UPDATE {TABLE} AS t SET status = v.status, "
            f"return_value = CASE WHEN v.status = '{successful}' THEN v.value::jsonb ELSE t.return_value END, "
            "errors = CASE WHEN v.error IS NULL THEN t.errors ELSE "
            f"{sql.append_bounded('t.errors', 'v.error::jsonb', limit=MAX_ERRORS, keep_first=KEEP_FIRST)} END, "
            "dropped_errors = t.dropped_errors + CASE WHEN v.error IS NOT NULL AND "
            f"{sql.is_full('t.errors', MAX_ERRORS)} THEN 1 ELSE 0 END, "
            f"finished_at = CASE WHEN v.status = '{ready}' THEN NULL ELSE {now} END, "
            "failure_reason = v.reason, run_after = v.run_after, retries = v.retries, worker = NULL "
            "FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::text[], %s::text[], %s::timestamptz[], %s::int[]) "
            "AS v(id, status, value, error, reason, run_after, retries) "
            f"WHERE t.id = v.id AND t.status = '{running}' AND t.worker = %s "
            "RETURNING t.id, t.finished_at, t.step_id"
        )
    return (
        f"UPDATE {TABLE} SET status = %s, "
        f"return_value = CASE WHEN %s = '{successful}' THEN json(%s) ELSE return_value END, "
        "errors = CASE WHEN %s IS NULL THEN errors ELSE "
        f"{sql.append_bounded('errors', '%s', limit=MAX_ERRORS, keep_first=KEEP_FIRST)} END, "
        f"dropped_errors = dropped_errors + CASE WHEN %s IS NOT NULL AND {sql.is_full('errors', MAX_ERRORS)} "
        "THEN 1 ELSE 0 END, "
        f"finished_at = CASE WHEN %s = '{ready}' THEN NULL ELSE {now} END, "
        "failure_reason = %s, run_after = %s, retries = %s, worker = NULL "
        f"WHERE id = %s AND status = '{running}' AND worker = %s "
        "RETURNING id, finished_at, step_id"
    )
