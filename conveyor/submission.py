"""The one durable path into Conveyor: a task row and its outbox entry, in one transaction.

Every source (HTTP API, django.tasks, the scheduler) goes through here. Publishing
happens only after the transaction commits; if the caller is already inside a
transaction, the task is enqueued when (and only if) that transaction commits.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from django.conf import settings
from django.db import IntegrityError, connections, router, transaction
from django.db.models.sql import InsertQuery
from django.utils import timezone

from conveyor import catalog, metrics, outbox
from conveyor.core.models import ApiToken, OutboxEntry, TaskRecord, TaskSource
from conveyor.errors import IdempotencyConflict, InvalidArguments
from conveyor.publisher import publish_after_commit


@dataclass
class TaskSpec:
    """What a caller asks to run; `None` fields take the task's own defaults."""

    task_path: str
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    queue_name: str | None = None
    priority: int | None = None
    run_after: datetime | None = None


class Submitted(NamedTuple):
    record: TaskRecord
    created: bool  # False: an Idempotency-Key replay answered with the existing task


def prepare(spec: TaskSpec) -> TaskRecord:
    """Validate a spec against the catalog; return the TaskRecord to insert (unsaved)."""
    entry = catalog.get(spec.task_path)
    entry.validate(spec.args, spec.kwargs)
    queue_name = entry.task.queue_name if spec.queue_name is None else spec.queue_name
    if queue_name not in settings.CONVEYOR_QUEUES:
        raise InvalidArguments(
            f"unknown queue {queue_name!r}; configured queues: {', '.join(settings.CONVEYOR_QUEUES)}"
        )
    priority = entry.task.priority if spec.priority is None else spec.priority
    return TaskRecord(
        task_path=spec.task_path,
        args=list(spec.args),
        kwargs=dict(spec.kwargs),
        queue_name=queue_name,
        priority=priority,
        run_after=spec.run_after,
    )


def submit_many(
    records: Sequence[TaskRecord],
    *,
    source: str = TaskSource.API,
    owner: ApiToken | None = None,
    owner_id: int | None = None,
) -> Sequence[TaskRecord]:
    """Insert prepared records and their outbox entries; publish after commit.

    The owner is a token, or its id (a workflow's next steps, where only the id is at hand).
    """
    now = timezone.now()
    for record in records:
        record.source = source
        if owner is not None or owner_id is None:
            record.owner = owner
        else:
            record.owner_id = owner_id
        record.enqueued_at = now
    entries = _insert(records, now)
    publish_after_commit(entries)
    for record in records:
        metrics.TASKS_ACCEPTED.labels(task=record.task_path, source=source).inc()
    return records


def _insert(records: Sequence[TaskRecord], now: datetime) -> list[OutboxEntry]:
    """Insert the task rows and their outbox entries atomically; return the entries in order."""
    using = router.db_for_write(TaskRecord)
    if connections[using].vendor == "postgresql" and len(records) <= settings.CONVEYOR_MAX_BATCH:
        return _insert_in_one_statement(records, now, using)
    with transaction.atomic(using=using):
        TaskRecord.objects.using(using).bulk_create(records)
        return outbox.add(records, now)


def _insert_in_one_statement(records: Sequence[TaskRecord], now: datetime, using: str) -> list[OutboxEntry]:
    """PostgreSQL: both inserts in one data-modifying CTE, so one round trip and no BEGIN/COMMIT.

    A single statement is atomic on its own, and inside a caller's transaction it is
    part of it. Django's own compiler writes the task INSERT (columns, defaults,
    auto_now_add, JSON adaptation), so the statement follows the model; the outbox
    writes its own part (conveyor.outbox.insert_sql, where the lease rule lives).
    Measured on the web's hot path: two bulk_create calls in a transaction were about a
    third of a web process's CPU per accepted task (docs/performance.md).
    """
    query = InsertQuery(TaskRecord)
    query.insert_values([f for f in TaskRecord._meta.concrete_fields if not f.generated], records)
    [(task_sql, task_params)] = query.get_compiler(using=using).as_sql()
    statement = f"WITH task AS ({task_sql} RETURNING id, run_after) {outbox.insert_sql('task')}"
    with connections[using].cursor() as cursor:
        cursor.execute(statement, (*task_params, *outbox.entry_params(now)))
        rows = cursor.fetchall()
    for record in records:
        record._state.adding, record._state.db = False, using
    return outbox.entries_from_rows(rows, records, now)


def submit(
    record: TaskRecord,
    *,
    source: str = TaskSource.API,
    owner: ApiToken | None = None,
    idempotency_key: str | None = None,
) -> Submitted:
    """Insert one prepared record. With an idempotency key, a replay returns the existing task."""
    if idempotency_key is None:
        return Submitted(submit_many([record], source=source, owner=owner)[0], True)
    existing = _find_idempotent(owner, idempotency_key, record)
    if existing is not None:
        return Submitted(existing, False)
    record.idempotency_key = idempotency_key
    try:
        with transaction.atomic():
            return Submitted(submit_many([record], source=source, owner=owner)[0], True)
    except IntegrityError:
        # A concurrent request with the same key won the race: answer with its task.
        existing = _find_idempotent(owner, idempotency_key, record)
        if existing is None:
            raise
        return Submitted(existing, False)


def _find_idempotent(owner: ApiToken | None, key: str, record: TaskRecord) -> TaskRecord | None:
    existing = TaskRecord.objects.filter(owner=owner, idempotency_key=key).first()
    if existing is not None and (
        existing.task_path != record.task_path or existing.args != record.args or existing.kwargs != record.kwargs
    ):
        raise IdempotencyConflict(f"Idempotency-Key {key!r} was already used for a different task ({existing.id})")
    return existing
