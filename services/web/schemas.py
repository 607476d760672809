"""Request and response shapes of the HTTP API (they make the OpenAPI schema)."""

from datetime import datetime
from typing import Any

from ninja import Schema
from pydantic import ConfigDict, Field

from conveyor.core.models import TaskRecord
from services.web.datetimes import AwareDateTime


class TaskIn(Schema):
    # strict: JSON types as the schema states them (false is not 0, "5" is not 5);
    # unknown fields (status, id, owner, attempts...) are refused, never ignored.
    model_config = ConfigDict(extra="forbid", strict=True)

    task: str = Field(
        description="Catalog name, e.g. demo.tasks.add",
        max_length=200,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$",
    )
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    queue: str | None = Field(default=None, description="Defaults to the task's queue")
    priority: int | None = Field(default=None, ge=-100, le=100, description="-100..100, higher runs first")
    run_after: AwareDateTime | None = Field(
        default=None,
        description="Do not start before (RFC 3339 with offset); past the year 9999 in UTC means never",
    )


class BatchIn(Schema):
    # strict: JSON types as the schema states them (false is not 0, "5" is not 5);
    # unknown fields are refused, never ignored.
    model_config = ConfigDict(extra="forbid", strict=True)

    tasks: list[TaskIn] = Field(min_length=1, max_length=1000)


class TaskError(Schema):
    exception_class_path: str
    message: str = ""
    traceback: str = ""
    attempt: int | None = None
    at: str | None = None


class TaskOut(Schema):
    id: str
    task: str
    queue: str
    priority: int
    status: str
    args: list[Any]
    kwargs: dict[str, Any]
    attempts: int
    return_value: Any = None
    errors: list[TaskError] = Field(
        description="Failed attempts, oldest first: on a task, the first 3 and the latest 17 at most; "
        "in a list, only the latest"
    )
    error_count: int = Field(description="Every failed attempt, including those left out of errors")
    failure_reason: str
    progress: Any = None
    source: str
    idempotency_key: str | None = None
    enqueued_at: datetime
    run_after: datetime | None = None
    started_at: datetime | None = None
    last_attempted_at: datetime | None = None
    finished_at: datetime | None = None
    worker_ids: list[str]
    schedule: str | None = Field(default=None, description="The schedule that fired this task, if any")
    fire_time: datetime | None = Field(default=None, description="The fire time it was fired for")
    workflow: str | None = Field(
        default=None, description="The workflow it is a step of (GET /api/v1/workflows/<id>); on a single task only"
    )


class TaskPage(Schema):
    items: list[TaskOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last")


class BatchOut(Schema):
    tasks: list[TaskOut]


class Parameter(Schema):
    name: str
    kind: str
    required: bool
    type: str | None = None
    default: Any = None


class CatalogTask(Schema):
    name: str
    description: str
    queue: str
    priority: int
    max_retries: int
    http: str = Field(description="Who may run it over HTTP: write (write and admin tokens) or admin")
    time_limit_seconds: float
    parameters: list[Parameter]


class ErrorBody(Schema):
    code: str
    message: str
    details: Any = None


class ErrorOut(Schema):
    error: ErrorBody


def task_out(record: TaskRecord, *, summary: bool = False) -> dict[str, Any]:
    """A task record as the API shows it (TaskOut); in a list (`summary`), only its latest error."""
    return {
        "id": str(record.id),
        "task": record.task_path,
        "queue": record.queue_name,
        "priority": record.priority,
        "status": record.status,
        "args": record.args,
        "kwargs": record.kwargs,
        "attempts": record.attempts,
        "return_value": record.return_value,
        "errors": record.errors[-1:] if summary else record.errors,
        "error_count": len(record.errors) + record.dropped_errors,
        "failure_reason": record.failure_reason,
        "progress": record.progress,
        "source": record.source,
        "idempotency_key": record.idempotency_key,
        "enqueued_at": record.enqueued_at,
        "run_after": record.run_after,
        "started_at": record.started_at,
        "last_attempted_at": record.last_attempted_at,
        "finished_at": record.finished_at,
        "worker_ids": record.worker_ids,
        "schedule": record.schedule_name,
        "fire_time": record.fire_time,
    }


def task_location(record: TaskRecord) -> str:
    return f"/api/v1/tasks/{record.id}"


# Every error response of the API has this shape (services/web/errors.py).
ERRORS = {status: ErrorOut for status in (400, 401, 403, 404, 409, 413, 503)}
