"""The task list's filters and its keyset pages, read from the query string.

Pages are keyset pages on (enqueued_at, id), the order of the table's list index: the
next page starts after the last row shown, so page 1,000 costs what page 1 costs, and
rows arriving meanwhile do not shift what the next page shows. Text search reads the
arguments, the errors and the failure reason as text; it walks the list index newest
first, so a rare match in a huge table can take long: the time range narrows it, and a
statement timeout (SEARCH_TIMEOUT_MS) bounds it.
"""

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db import connection
from django.db.models import Q, QuerySet, TextField
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from conveyor.core.models import TaskRecord
from conveyor.status import OPEN, TaskStatus, status_group

PAGE_SIZE = 50
SEARCH_TIMEOUT_MS = 5000
MAX_ID = 2**63 - 1  # the largest id a database integer column holds
FIELDS = ("status", "task", "queue", "owner", "since", "until", "q", "exception")


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except (TypeError, ValueError):
        return False
    return True


def last_exception_sql() -> str:
    """SQL for the exception class of a task's latest recorded error ('' when none)."""
    if connection.vendor == "postgresql":
        return "COALESCE(errors -> -1 ->> 'exception_class_path', '')"
    return "COALESCE(json_extract(errors, '$[#-1].exception_class_path'), '')"


def _when(value: str) -> datetime | None:
    """A time from a datetime-local input (the server's time zone) or an ISO 8601 string."""
    if not value:
        return None
    try:
        parsed = parse_datetime(value)
    except ValueError:
        return None
    if parsed is None:
        return None
    try:
        if timezone.is_naive(parsed):
            parsed = timezone.make_aware(parsed)
        # In UTC now: an offset that moves it past year 1 or 9999 is refused here, not by the database.
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def by_status(queryset: QuerySet, status: str) -> QuerySet:
    """Tasks of one status, through the index on status_group (conveyor/status.py).

    A finished status is its own group; READY and RUNNING share the group "open".
    """
    group = status_group(status)
    queryset = queryset.filter(status_group=group)
    return queryset.filter(status=status) if group == OPEN else queryset


@dataclass
class TaskFilter:
    status: str = ""
    task: str = ""
    queue: str = ""
    owner: str = ""
    since: str = ""
    until: str = ""
    q: str = ""
    exception: str = ""
    problems: list[str] = field(default_factory=list)

    @classmethod
    def from_query(cls, data) -> "TaskFilter":
        found = cls(**{name: (data.get(name) or "").strip()[:500] for name in FIELDS})
        if found.status and found.status not in TaskStatus.values:
            found.problems.append(f"unknown status {found.status!r}")
            found.status = ""
        for name in ("since", "until"):
            if getattr(found, name) and _when(getattr(found, name)) is None:
                found.problems.append(f"{name}: not a date and time")
                setattr(found, name, "")
        if found.owner and not (found.owner.isdigit() and int(found.owner) <= MAX_ID):
            found.problems.append("owner: a token id")
            found.owner = ""
        for name in FIELDS:
            if "\x00" in getattr(found, name):
                found.problems.append(f"{name}: contains U+0000")
                setattr(found, name, "")
        return found

    def as_params(self) -> dict[str, str]:
        """The filter as query-string parameters (only those set)."""
        return {name: getattr(self, name) for name in FIELDS if getattr(self, name)}

    @property
    def active(self) -> bool:
        return bool(self.as_params())

    def apply(self, queryset: QuerySet | None = None) -> QuerySet:
        queryset = TaskRecord.objects.all() if queryset is None else queryset
        if self.status:
            queryset = by_status(queryset, self.status)
        if self.task:
            queryset = queryset.filter(task_path=self.task)
        if self.queue:
            queryset = queryset.filter(queue_name=self.queue)
        if self.owner:
            queryset = queryset.filter(owner_id=int(self.owner))
        if self.since:
            queryset = queryset.filter(enqueued_at__gte=_when(self.since))
        if self.until:
            queryset = queryset.filter(enqueued_at__lt=_when(self.until))
        if self.exception:
            queryset = queryset.annotate(last_exception=RawSQL(last_exception_sql(), [])).filter(
                last_exception=self.exception
            )
        if self.q:
            queryset = queryset.filter(self._text())
        return queryset

    def _text(self) -> Q:
        try:
            return Q(id=uuid.UUID(self.q))
        except ValueError:
            pass
        return (
            Q(failure_reason__icontains=self.q)
            | Q(_args_text__icontains=self.q)
            | Q(_kwargs_text__icontains=self.q)
            | Q(_errors_text__icontains=self.q)
        )

    def apply_text_annotations(self, queryset: QuerySet) -> QuerySet:
        if not self.q:
            return queryset
        return queryset.annotate(
            _args_text=Cast("args", TextField()),
            _kwargs_text=Cast("kwargs", TextField()),
            _errors_text=Cast("errors", TextField()),
        )

    def queryset(self) -> QuerySet:
        return self.apply(self.apply_text_annotations(TaskRecord.objects.all()))


def encode_cursor(record: TaskRecord) -> str:
    return f"{record.enqueued_at.isoformat()}|{record.id}"


def after(queryset: QuerySet, cursor: str) -> QuerySet:
    """The rows after `cursor` (a previous page's last row) in list order; unchanged if the cursor is not one."""
    at, _, task_id = (cursor or "").partition("|")
    when = _when(at)
    try:
        task_uuid = uuid.UUID(task_id)
    except ValueError:
        return queryset
    if when is None:
        return queryset
    return queryset.filter(Q(enqueued_at__lt=when) | Q(enqueued_at=when, id__lt=task_uuid))


def page(queryset: QuerySet, cursor: str = "", size: int | None = None) -> tuple[list[TaskRecord], str]:
    """One page in list order and the cursor of the next ('' on the last page)."""
    size = size or PAGE_SIZE
    rows = list(after(queryset, cursor).order_by("-enqueued_at", "-id")[: size + 1])
    if len(rows) > size:
        return rows[:size], encode_cursor(rows[size - 1])
    return rows, ""
