"""Processed and failed runs over time, from every worker process's heartbeat.

Each worker process counts the runs whose outcome it committed and adds them, with its
heartbeat, to its row for the current BUCKET_SECONDS bucket (one writer per row, so no
contention). The dashboard sums the buckets of every worker: the same figures on every
web replica, with no scan of the task table.
"""

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db.models import F, Sum
from django.utils import timezone

from conveyor.core.models import Throughput

BUCKET_SECONDS = 10
KEEP = timedelta(hours=2)


def bucket(at: datetime) -> datetime:
    """Start of the bucket `at` falls in."""
    return at.replace(microsecond=0) - timedelta(seconds=at.second % BUCKET_SECONDS)


def add(worker: str, processed: int, failed: int, at: datetime | None = None) -> None:
    """Count runs that ended in `worker` (idempotence is the caller's: count each run once)."""
    if not processed and not failed:
        return
    start = bucket(at or timezone.now())
    updated = Throughput.objects.filter(at=start, worker=worker).update(
        processed=F("processed") + processed, failed=F("failed") + failed
    )
    if not updated:
        Throughput.objects.create(at=start, worker=worker, processed=processed, failed=failed)


def forget_before(before: datetime) -> int:
    """Drop buckets older than `before` (the graph shows the last hour)."""
    return Throughput.objects.filter(at__lt=before).delete()[0]


def series(since: datetime, until: datetime | None = None) -> list[dict]:
    """Every bucket from `since` to `until`, oldest first: {"at", "processed", "failed"} per second.

    Buckets in which nothing ended are present with zeros, so a graph shows the gaps.
    """
    until = until or timezone.now()
    rows = (
        Throughput.objects.filter(at__gte=bucket(since), at__lte=until)
        .values("at")
        .annotate(processed=Sum("processed"), failed=Sum("failed"))
    )
    by_bucket = {row["at"]: row for row in rows}
    points, at = [], bucket(since)
    while at <= until:
        row = by_bucket.get(at, {})
        points.append(
            {
                "at": at,
                "processed": (row.get("processed") or 0) / BUCKET_SECONDS,
                "failed": (row.get("failed") or 0) / BUCKET_SECONDS,
            }
        )
        at += timedelta(seconds=BUCKET_SECONDS)
    return points


def totals(points: Iterable[dict]) -> dict[str, float]:
    """Runs over the points (rates times the bucket length)."""
    processed = failed = 0.0
    for point in points:
        processed += point["processed"] * BUCKET_SECONDS
        failed += point["failed"] * BUCKET_SECONDS
    return {"processed": round(processed), "failed": round(failed)}
