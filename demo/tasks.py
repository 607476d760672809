"""The demo tasks from the seed documents, plus helpers for tests and benchmarks.

Each is an ordinary django.tasks `@task`; Conveyor's backend runs it on a worker.
"""

import csv
import io
import time
from pathlib import PurePosixPath

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.mail import send_mail
from django.db.models import Count
from django.db.models.functions import TruncDate
from django.tasks import task
from django.utils import timezone

from conveyor.core.models import TaskRecord, TaskStatus
from conveyor.errors import TaskRejected
from conveyor.runtime import set_progress
from conveyor.scheduling import periodic


@task(http="write")
def add(x: int | float, y: int | float) -> int | float:
    """Add two numbers: add(4, 6) returns 10."""
    return x + y


@task(http="write")
def total(values: list[int | float]) -> int | float:
    """The sum of a list of numbers: a chord's callback (`chord(group(add.s(i, i) ...), total.s())`)."""
    return sum(values)


# Sends any mail to anyone: admin tokens only over HTTP (the feedback form enqueues it from Django).
@task(queue_name="emails", max_retries=5, time_limit=60, http="admin")
def send_email(to: str, subject: str, body: str) -> dict:
    """Send one email through Django's email framework (retried on SMTP errors)."""
    sent = send_mail(subject, body, None, [to], fail_silently=False)
    return {"sent": sent, "to": to}


THUMBNAIL_SIZES = (64, 128, 256)
MAX_THUMBNAIL_SIZE, MAX_THUMBNAILS = 1024, 8


# Reads a path in the media storage: not over HTTP (the upload endpoint enqueues it itself).
@task(queue_name="images", time_limit=120, http="none")
def thumbnail(path: str, sizes: list[int] | None = None) -> dict:
    """Write resized copies of an uploaded image (Pillow, through Django's storage API)."""
    # Late: only the process that makes thumbnails pays for loading Pillow.
    from PIL import Image

    sizes = sizes or list(THUMBNAIL_SIZES)
    if len(sizes) > MAX_THUMBNAILS or not all(0 < size <= MAX_THUMBNAIL_SIZE for size in sizes):
        raise TaskRejected(f"at most {MAX_THUMBNAILS} sizes, each 1 to {MAX_THUMBNAIL_SIZE} pixels; got {sizes}")
    # Decode no more than an upload may have (a file put in the storage some other way).
    Image.MAX_IMAGE_PIXELS = settings.CONVEYOR_MAX_IMAGE_PIXELS
    written = {}
    source = PurePosixPath(path)
    for done, size in enumerate(sizes, start=1):
        with default_storage.open(path, "rb") as handle:
            image = Image.open(handle)
            image.load()
        image = image.convert("RGB")
        image.thumbnail((size, size))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=85)
        target = str(source.parent / "thumbnails" / f"{source.stem}-{size}.jpg")
        if default_storage.exists(target):
            default_storage.delete(target)  # idempotent: a redelivery overwrites, never duplicates
        written[str(size)] = default_storage.save(target, ContentFile(buffer.getvalue()))
        set_progress({"done": done, "total": len(sizes)})
    return {"thumbnails": written}


# Counts every owner's tasks: admin tokens only.
@task(queue_name="reports", time_limit=300, http="admin")
def csv_report(days: int = 7) -> dict:
    """Write a CSV of tasks per day and status over the last `days` days; returns its path."""
    since = timezone.now() - timezone.timedelta(days=days)
    rows = (
        TaskRecord.objects.filter(enqueued_at__gte=since)
        .annotate(day=TruncDate("enqueued_at"))
        .values("day", "task_path", "status")
        .annotate(count=Count("id"))
        .order_by("day", "task_path", "status")
    )
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["day", "task", "status", "count"])
    for row in rows:
        writer.writerow([row["day"], row["task_path"], row["status"], row["count"]])
    name = default_storage.save(f"reports/tasks-{timezone.now():%Y%m%d-%H%M%S}.csv", ContentFile(out.getvalue()))
    return {"path": name, "rows": len(rows)}


@task(http="write")
def sleep(seconds: float) -> float:
    """Sleep (an I/O-bound task for scaling tests and benchmarks)."""
    time.sleep(seconds)
    return seconds


class DemoFailure(Exception):
    pass


@task(max_retries=0, http="write")
def fail(message: str = "demo failure") -> None:
    """Always raise DemoFailure (no retries): a failing task for tests and dashboards."""
    raise DemoFailure(message)


@task(http="write")
def noop() -> None:
    """Do nothing (throughput benchmarks)."""


@task(takes_context=True, max_retries=5, http="write")
def flaky(context, failures: int) -> int:
    """Fail the first `failures` attempts, then succeed (retries and backoff in tests)."""
    if context.attempt <= failures:
        raise DemoFailure(f"attempt {context.attempt} of {failures} planned failures")
    return context.attempt


# The seeds' "email sent to users every day at 8:00". A digest later than 9:00 is no
# longer a morning digest: skip it (recorded as a misfire) rather than send it at noon.
@periodic(name="demo.daily-digest", cron="0 8 * * *", timezone=settings.TIME_ZONE, misfire_grace=3600)
@task(queue_name="emails", max_retries=5, time_limit=120, http="admin")
def send_daily_digest(recipients: list[str] | None = None) -> dict:
    """Email a summary of the last 24 hours of tasks to each active user with an address."""
    if recipients is None:
        recipients = list(
            get_user_model().objects.filter(is_active=True).exclude(email="").values_list("email", flat=True)
        )
    since = timezone.now() - timezone.timedelta(days=1)
    counts = dict(
        TaskRecord.objects.filter(enqueued_at__gte=since).values_list("status").annotate(n=Count("id")).order_by()
    )
    order = (TaskStatus.SUCCESSFUL, TaskStatus.FAILED, TaskStatus.READY, TaskStatus.RUNNING, TaskStatus.CANCELLED)
    lines = [f"{status}: {counts.get(status, 0)}" for status in order]
    body = "Tasks in the last 24 hours\n\n" + "\n".join(lines) + "\n"
    for address in recipients:  # one message each: recipients never see each other
        send_mail("Conveyor daily digest", body, None, [address], fail_silently=False)
    return {"sent": len(recipients)}
