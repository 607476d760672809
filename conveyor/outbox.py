"""The outbox: every statement on it, and moving its entries to RabbitMQ.

An entry is written in the same transaction as its task row, and deleted only after
RabbitMQ confirmed the task's message, so a crash between the two re-publishes it
(at-least-once); the worker skips a task that already finished, so a duplicate
message never runs a finished task twice.

The lease rule, in one place (ENTRY_SELECT): an entry for a task that is due now is
leased to the process that wrote it (its publisher thread sends it right after the
commit); an entry for a deferred task (`run_after` in the future) has no lease and
waits for a relay. When a lease runs out (the holder died, the broker was down) any
relay may claim the entry (`claim_due`).
"""

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

import dramatiq
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from conveyor import confirms, sql
from conveyor.core.models import OutboxEntry, TaskRecord, TaskStatus
from conveyor.messages import build_message

logger = logging.getLogger(__name__)

CLAIM_LIMIT = 500
# Messages sent before waiting for their confirms together (conveyor/confirms.py).
PUBLISH_CHUNK = 500
# A publisher does not start on an entry whose lease ends sooner than this.
LEASE_MARGIN = timedelta(seconds=1)

TABLE = OutboxEntry._meta.db_table
_COLUMNS = ", ".join(
    OutboxEntry._meta.get_field(name).column
    for name in ("task", "available_at", "locked_until", "attempts", "last_error", "created_at")
)
# One entry per task row read from `source`; the lease rule is the CASE. Parameters: entry_params().
ENTRY_SELECT = (
    "SELECT id, COALESCE(run_after, %s), CASE WHEN run_after IS NULL OR run_after <= %s THEN %s END, 0, '', %s "
    "FROM {source}"
)


class Backlog(NamedTuple):
    entries: int
    oldest_due_age_seconds: float


def insert_sql(source: str) -> str:
    """INSERT one entry per task row of `source` (a table expression with id and run_after)."""
    return (
        f"INSERT INTO {TABLE} ({_COLUMNS}) {ENTRY_SELECT.format(source=source)} "
        "RETURNING id, task_id, available_at, locked_until"
    )


def entry_params(now: datetime) -> tuple:
    lease_end = now + timedelta(seconds=settings.CONVEYOR_OUTBOX_LEASE_SECONDS)
    return (sql.when(now), sql.when(now), sql.when(lease_end), sql.when(now))


def entries_from_rows(rows: Sequence[tuple], records: Sequence[TaskRecord], now: datetime) -> list[OutboxEntry]:
    """The entries insert_sql() returned, in the order of `records`, each holding its record."""
    by_task = {
        str(sql.task_id(task_id)): (entry_id, available_at, locked_until)
        for entry_id, task_id, available_at, locked_until in rows
    }
    entries = []
    for record in records:
        entry_id, available_at, locked_until = by_task[str(sql.task_id(record.id))]
        entry = OutboxEntry(
            id=entry_id,
            task=record,
            available_at=sql.to_datetime(available_at),
            locked_until=sql.to_datetime(locked_until),
            attempts=0,
            last_error="",
            created_at=now,
        )
        entry._state.adding, entry._state.db = False, record._state.db
        entries.append(entry)
    return entries


def add(records: Sequence[TaskRecord], now: datetime) -> list[OutboxEntry]:
    """Write an entry for each of `records`, already in the database (part of the caller's transaction)."""
    placeholders = ", ".join(["%s"] * len(records))
    source = f"{TaskRecord._meta.db_table} WHERE id IN ({placeholders})"
    with connection.cursor() as cursor:
        cursor.execute(insert_sql(source), (*entry_params(now), *(sql.task_id(r.id) for r in records)))
        rows = cursor.fetchall()
    return entries_from_rows(rows, records, now)


def add_for(task_ids: Sequence[str], now: datetime) -> list[OutboxEntry]:
    """Write an entry for each of these tasks, by id (the worker's retries; part of the caller's transaction).

    The entries that are due now (leased to this process by the rule) hold their task, so
    they can be handed to this process's publisher.
    """
    placeholders = ", ".join(["%s"] * len(task_ids))
    source = f"{TaskRecord._meta.db_table} WHERE id IN ({placeholders})"
    with connection.cursor() as cursor:
        cursor.execute(insert_sql(source), (*entry_params(now), *(sql.task_id(t) for t in task_ids)))
        rows = cursor.fetchall()
    entries = [
        OutboxEntry(
            id=entry_id,
            task_id=uuid.UUID(str(task_id)),
            available_at=sql.to_datetime(available_at),
            locked_until=sql.to_datetime(locked_until),
            created_at=now,
        )
        for entry_id, task_id, available_at, locked_until in rows
    ]
    due = due_now(entries)
    if due:
        records = TaskRecord.objects.in_bulk([entry.task_id for entry in due])
        for entry in due:
            entry.task = records[entry.task_id]
    return entries


def due_now(entries: Sequence[OutboxEntry]) -> list[OutboxEntry]:
    """The entries leased to this process's publisher (a task due now), per ENTRY_SELECT."""
    return [entry for entry in entries if entry.locked_until is not None]


def deliver(entries: Sequence[OutboxEntry]) -> int:
    """Publish the entries' tasks in order, confirmed chunk by chunk; delete the confirmed entries.

    Each entry must hold its task (`entry.task`). Stops at the first broker error (the
    rest keep their lease and a relay takes them once it runs out). Returns how many
    were published.
    """
    broker = dramatiq.get_broker()
    skipped, expired, due = [], 0, []
    for entry in entries:
        if entry.task.status == TaskStatus.CANCELLED:
            skipped.append(entry.pk)
        elif entry.locked_until is not None and entry.locked_until - timezone.now() < LEASE_MARGIN:
            # Our lease is (nearly) over: a relay may own this entry now. Publishing it
            # too would send the task twice; the relay will publish it.
            expired += 1
        else:
            due.append((entry, build_message(entry.task)))
    done = []
    for start in range(0, len(due), PUBLISH_CHUNK):
        chunk = due[start : start + PUBLISH_CHUNK]
        try:
            published = confirms.send(broker, [message for _, message in chunk])
        except Exception as exc:  # broker down, channel closed...
            left = [entry.pk for entry, _ in due[start:]]
            OutboxEntry.objects.filter(pk__in=left).update(last_error=str(exc)[:500])
            logger.warning("Publishing stopped after %d of %d: %s", len(done), len(due), exc)
            break
        done += [entry.pk for entry, message in chunk if message.message_id in published]
        rejected = [entry.pk for entry, message in chunk if message.message_id not in published]
        if rejected:
            # They keep their lease; a relay publishes them once it runs out.
            OutboxEntry.objects.filter(pk__in=rejected).update(
                last_error="nacked or returned as unroutable by RabbitMQ"
            )
    if done or skipped:
        _delete(done + skipped)
    if expired:
        logger.warning("Left %d tasks whose lease ran out to the relay", expired)
    return len(done)


def _delete(ids: list[int]) -> None:
    """One DELETE statement. QuerySet.delete() would first run Django's deletion collector
    (signals, cascades: an outbox entry has neither) in a transaction of its own; that was
    a tenth of a web process's CPU per task when publishing one task per request."""
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {TABLE} WHERE id IN ({', '.join(['%s'] * len(ids))})", ids)


def claim_due(limit: int = CLAIM_LIMIT) -> list[OutboxEntry]:
    """Lease up to `limit` due entries whose lease has run out (or never had one), each with its task.

    SKIP LOCKED lets any number of relays run side by side without publishing the
    same entry twice; on SQLite the IMMEDIATE transaction serialises them instead.
    """
    now = timezone.now()
    lease = timedelta(seconds=settings.CONVEYOR_OUTBOX_LEASE_SECONDS)
    with transaction.atomic():
        ids = list(
            OutboxEntry.objects.select_for_update(skip_locked=True)
            .filter(available_at__lte=now)
            .filter(Q(locked_until__isnull=True) | Q(locked_until__lt=now))
            .order_by("available_at", "id")
            .values_list("id", flat=True)[:limit]
        )
        if ids:
            OutboxEntry.objects.filter(id__in=ids).update(locked_until=now + lease, attempts=F("attempts") + 1)
    return list(OutboxEntry.objects.filter(id__in=ids).select_related("task").order_by("available_at", "id"))


def backlog() -> Backlog:
    """How many entries wait, and how long the oldest due one has (for metrics and alerts)."""
    now = timezone.now()
    count = OutboxEntry.objects.count()
    oldest = (
        OutboxEntry.objects.filter(available_at__lte=now)
        .order_by("available_at")
        .values_list("available_at", flat=True)
        .first()
    )
    return Backlog(count, (now - oldest).total_seconds() if oldest else 0.0)
