"""Moving outbox entries to RabbitMQ: publish with confirms, then delete the entries.

An entry is deleted only after RabbitMQ confirmed its message, so a crash between
the two re-publishes it (at-least-once); the worker skips a task that already
finished, so a duplicate message never runs a finished task twice.
"""

import logging
from datetime import timedelta

import dramatiq
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from conveyor import batch_publish
from conveyor.core.models import OutboxEntry, TaskStatus
from conveyor.messages import build_message

logger = logging.getLogger(__name__)


CLAIM_LIMIT = 500
# Messages sent before waiting for their confirms together (conveyor/batch_publish.py).
PUBLISH_CHUNK = 500
# A publisher does not start on an entry whose lease ends sooner than this.
LEASE_MARGIN = timedelta(seconds=1)


def publish(pairs):
    """Publish (entry, record) pairs in order, confirmed chunk by chunk; delete the confirmed entries.

    Stops at the first broker error (the rest keep their lease and a relay takes
    them once it runs out). Returns how many were published.
    """
    broker = dramatiq.get_broker()
    skipped, expired, due = [], 0, []
    for entry, record in pairs:
        if record.status == TaskStatus.CANCELLED:
            skipped.append(entry.pk)
        elif entry.locked_until is not None and entry.locked_until - timezone.now() < LEASE_MARGIN:
            # Our lease is (nearly) over: a relay may own this entry now. Publishing it
            # too would send the task twice; the relay will publish it.
            expired += 1
        else:
            due.append((entry, build_message(record)))
    done = []
    for start in range(0, len(due), PUBLISH_CHUNK):
        chunk = due[start : start + PUBLISH_CHUNK]
        try:
            published = batch_publish.publish_messages(broker, [message for _, message in chunk])
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


def _delete(ids):
    """One DELETE statement. QuerySet.delete() would first run Django's deletion collector
    (signals, cascades: an outbox entry has neither) in a transaction of its own; that was
    a tenth of a web process's CPU per task when publishing one task per request."""
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {OutboxEntry._meta.db_table} WHERE id IN ({', '.join(['%s'] * len(ids))})", ids)


def claim_due(limit=CLAIM_LIMIT):
    """Lease up to `limit` due entries whose lease has run out (or never had one).

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
    entries = OutboxEntry.objects.filter(id__in=ids).select_related("task").order_by("available_at", "id")
    return [(entry, entry.task) for entry in entries]


def backlog():
    """(number of entries, age in seconds of the oldest due one) for metrics and alerts."""
    now = timezone.now()
    count = OutboxEntry.objects.count()
    oldest = (
        OutboxEntry.objects.filter(available_at__lte=now)
        .order_by("available_at")
        .values_list("available_at", flat=True)
        .first()
    )
    return count, (now - oldest).total_seconds() if oldest else 0.0
