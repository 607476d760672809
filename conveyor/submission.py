"""The one durable path into Conveyor: a task row and its outbox entry, in one transaction.

Every source (HTTP API, django.tasks, the scheduler) goes through here. Publishing
happens only after the transaction commits; if the caller is already inside a
transaction, the task is enqueued when (and only if) that transaction commits.
"""

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connections, router, transaction
from django.db.models.sql import InsertQuery
from django.utils import timezone

from conveyor import catalog, metrics
from conveyor.core.models import OutboxEntry, TaskRecord, TaskSource
from conveyor.errors import IdempotencyConflict, InvalidArguments


@dataclass
class TaskSpec:
    task_path: str
    args: list[Any]
    kwargs: dict[str, Any]
    queue_name: str | None = None
    priority: int | None = None
    run_after: Any = None


def prepare(spec):
    """Validate a spec against the catalog; return the TaskRecord to insert (unsaved)."""
    entry = catalog.get(spec.task_path)
    entry.validate(spec.args, spec.kwargs)
    queue_name = spec.queue_name or entry.task.queue_name
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


def _outbox_entry(record, now):
    due = record.run_after is None or record.run_after <= now
    lease = timedelta(seconds=settings.CONVEYOR_OUTBOX_LEASE_SECONDS)
    return OutboxEntry(
        task=record,
        available_at=record.run_after or now,
        # A due task is leased to this process's publisher; a deferred one waits for a relay.
        locked_until=now + lease if due else None,
    )


def submit_many(records, *, source=TaskSource.API, owner=None):
    """Insert prepared records and their outbox entries; publish after commit."""
    now = timezone.now()
    for record in records:
        record.source = source
        record.owner = owner
        record.enqueued_at = now
    entries = _insert(records, now)
    due = [(entry, record) for entry, record in zip(entries, records, strict=True) if entry.locked_until]
    if due:
        from conveyor.publisher import publisher

        transaction.on_commit(lambda: publisher.publish(due))
    for record in records:
        metrics.TASKS_ACCEPTED.labels(task=record.task_path, source=source).inc()
    return records


def _insert(records, now):
    """Insert the task rows and their outbox entries atomically; return the entries in order."""
    using = router.db_for_write(TaskRecord)
    if connections[using].vendor == "postgresql" and len(records) <= settings.CONVEYOR_MAX_BATCH:
        return _insert_in_one_statement(records, now, using)
    with transaction.atomic(using=using):
        TaskRecord.objects.using(using).bulk_create(records)
        return OutboxEntry.objects.using(using).bulk_create([_outbox_entry(r, now) for r in records])


def _insert_in_one_statement(records, now, using):
    """PostgreSQL: both inserts in one data-modifying CTE, so one round trip and no BEGIN/COMMIT.

    A single statement is atomic on its own, and inside a caller's transaction it is
    part of it. Django's own compiler writes the task INSERT (columns, defaults,
    auto_now_add, JSON adaptation), so the statement follows the model. Measured on
    the web's hot path: two bulk_create calls in a transaction were about a third of
    a web process's CPU per accepted task (README, "Performance").
    """
    query = InsertQuery(TaskRecord)
    query.insert_values(TaskRecord._meta.concrete_fields, records)
    [(task_sql, task_params)] = query.get_compiler(using=using).as_sql()
    outbox = OutboxEntry._meta
    columns = ", ".join(
        outbox.get_field(name).column
        for name in ("task", "available_at", "locked_until", "attempts", "last_error", "created_at")
    )
    # Same rule as _outbox_entry: a due task is leased to this process's publisher.
    sql = (
        f"WITH task AS ({task_sql} RETURNING id, run_after) "
        f"INSERT INTO {outbox.db_table} ({columns}) "
        "SELECT id, COALESCE(run_after, %s), CASE WHEN run_after IS NULL OR run_after <= %s THEN %s END, 0, '', %s "
        "FROM task RETURNING id, task_id, available_at, locked_until"
    )
    lease = timedelta(seconds=settings.CONVEYOR_OUTBOX_LEASE_SECONDS)
    with connections[using].cursor() as cursor:
        cursor.execute(sql, (*task_params, now, now, now + lease, now))
        rows = {
            task_id: (entry_id, available_at, locked_until) for entry_id, task_id, available_at, locked_until in cursor
        }
    entries = []
    for record in records:
        record._state.adding, record._state.db = False, using
        entry_id, available_at, locked_until = rows[record.id]
        entry = OutboxEntry(
            id=entry_id,
            task=record,
            available_at=available_at,
            locked_until=locked_until,
            attempts=0,
            last_error="",
            created_at=now,
        )
        entry._state.adding, entry._state.db = False, using
        entries.append(entry)
    return entries


def submit(record, *, source=TaskSource.API, owner=None, idempotency_key=None):
    """Insert one prepared record. With an idempotency key, return (existing, False) on replay."""
    if idempotency_key is None:
        return submit_many([record], source=source, owner=owner)[0], True
    existing = _find_idempotent(owner, idempotency_key, record)
    if existing is not None:
        return existing, False
    record.idempotency_key = idempotency_key
    try:
        with transaction.atomic():
            return submit_many([record], source=source, owner=owner)[0], True
    except IntegrityError:
        # A concurrent request with the same key won the race: answer with its task.
        existing = _find_idempotent(owner, idempotency_key, record)
        if existing is None:
            raise
        return existing, False


def _find_idempotent(owner, key, record):
    existing = TaskRecord.objects.filter(owner=owner, idempotency_key=key).first()
    if existing is not None and (
        existing.task_path != record.task_path or existing.args != record.args or existing.kwargs != record.kwargs
    ):
        raise IdempotencyConflict(f"Idempotency-Key {key!r} was already used for a different task ({existing.id})")
    return existing


def resubmit(record):
    """Put a FAILED or CANCELLED task back on its queue (the caller checked the status)."""
    now = timezone.now()
    with transaction.atomic():
        record.status = "READY"
        record.finished_at = None
        record.failure_reason = ""
        record.run_after = None
        record.save(update_fields=["status", "finished_at", "failure_reason", "run_after"])
        entry = _outbox_entry(record, now)
        entry.save()
    from conveyor.publisher import publisher

    transaction.on_commit(lambda: publisher.publish([(entry, record)]))
    return record
