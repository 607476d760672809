"""The HTTP API under /api/v1: tasks, batches, cancel, retry, the catalog.

OpenAPI schema at /api/v1/openapi.json, browsable docs at /api/v1/docs.
"""

import base64
from datetime import datetime

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DatabaseError, transaction
from django.db.models import Q
from django.utils import timezone
from ninja import NinjaAPI, Query, Schema
from ninja.errors import AuthenticationError, HttpError, ValidationError

from conveyor import catalog, submission
from conveyor.core.models import TaskRecord, TaskStatus
from conveyor.errors import ConveyorError, IdempotencyConflict
from services.web.auth import BearerToken, ScopeError, require, visible_tasks
from services.web.errors import database_unavailable, error_response
from services.web.schemas import BatchIn, BatchOut, CatalogTask, ErrorOut, TaskIn, TaskOut, TaskPage

api = NinjaAPI(
    title="Conveyor",
    version="1",
    description="Submit, inspect, cancel and retry background tasks. Every call needs "
    "`Authorization: Bearer <token>` (create one with `make token`).",
    auth=BearerToken(),
    urls_namespace="api-v1",
)

ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut, 413: ErrorOut, 503: ErrorOut}


# --- errors: one JSON shape, never a 500 page ---------------------------------


def _validation_details(errors):
    details = []
    for err in errors:
        loc = [str(part) for part in err.get("loc", []) if part not in ("body", "payload")]
        if err.get("type") == "extra_forbidden":
            message = f"field {'.'.join(loc)!r} may not be set by a client"
        else:
            message = err.get("msg", "invalid")
        # An error about the body as a whole (a JSON list instead of an object) has no field.
        details.append({"field": ".".join(loc) or "body", "error": message})
    return details


@api.exception_handler(ValidationError)
def _on_validation(request, exc):
    details = _validation_details(exc.errors)
    return error_response(400, "invalid_request", "; ".join(f"{d['field']}: {d['error']}" for d in details), details)


@api.exception_handler(AuthenticationError)
def _on_auth(request, exc):
    return error_response(
        401, "unauthorized", "missing or invalid bearer token", headers={"WWW-Authenticate": "Bearer"}
    )


@api.exception_handler(HttpError)
def _on_http_error(request, exc):
    if exc.status_code == 400 and "parse" in str(exc).lower():
        return error_response(400, "malformed_json", "request body is not valid JSON")
    return error_response(exc.status_code, "error", str(exc))


@api.exception_handler(ScopeError)
def _on_scope(request, exc):
    return error_response(403, "forbidden", str(exc))


@api.exception_handler(IdempotencyConflict)
def _on_idempotency(request, exc):
    return error_response(409, exc.code, str(exc))


@api.exception_handler(ConveyorError)
def _on_conveyor(request, exc):
    return error_response(400, exc.code, str(exc), getattr(exc, "details", None))


@api.exception_handler(RequestDataTooBig)
def _on_too_big(request, exc):
    return error_response(413, "body_too_large", f"request body exceeds {settings.CONVEYOR_MAX_BODY_BYTES} bytes")


@api.exception_handler(DatabaseError)
def _on_database(request, exc):
    return database_unavailable()


# --- helpers -------------------------------------------------------------------


def task_out(record):
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
        "errors": record.errors,
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


def _spec(payload):
    return submission.TaskSpec(
        task_path=payload.task,
        args=payload.args,
        kwargs=payload.kwargs,
        queue_name=payload.queue,
        priority=payload.priority,
        run_after=payload.run_after,
    )


def _location(record):
    return f"/api/v1/tasks/{record.id}"


# --- tasks ---------------------------------------------------------------------


@api.post("/tasks", response={202: TaskOut, 200: TaskOut, **ERRORS}, tags=["tasks"], summary="Submit a task")
def submit_task(request, payload: TaskIn):
    """Accept one task. 202 means it is stored durably; it is published after commit.

    With an `Idempotency-Key` header, a repeat of the same request returns the
    existing task (200) instead of creating another; the same key with a different
    task or arguments is a 409.
    """
    require(request, "write")
    record = submission.prepare(_spec(payload))
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (0 < len(key) <= 200):
        raise HttpError(400, "Idempotency-Key must be 1 to 200 characters")
    record, created = submission.submit(record, owner=request.api_token, idempotency_key=key)
    response = api.create_response(request, task_out(record), status=202 if created else 200)
    response["Location"] = _location(record)
    if not created:
        response["Idempotent-Replayed"] = "true"
    return response


@api.post("/tasks/batch", response={202: BatchOut, **ERRORS}, tags=["tasks"], summary="Submit up to 1,000 tasks")
def submit_batch(request, payload: BatchIn):
    """All or nothing: if any task is invalid, none is stored and the error names its index."""
    require(request, "write")
    records = []
    for index, item in enumerate(payload.tasks):
        try:
            records.append(submission.prepare(_spec(item)))
        except ConveyorError as exc:
            return error_response(400, exc.code, f"tasks[{index}]: {exc}", getattr(exc, "details", None))
    submission.submit_many(records, owner=request.api_token)
    return api.create_response(request, {"tasks": [task_out(r) for r in records]}, status=202)


@api.get("/tasks/{task_id}", response={200: TaskOut, **ERRORS}, tags=["tasks"], summary="Get a task")
def get_task(request, task_id: str):
    require(request, "read")
    return task_out(_get_visible(request, task_id))


def _get_visible(request, task_id, lock=False):
    queryset = visible_tasks(request, TaskRecord.objects.all())
    if lock:
        queryset = queryset.select_for_update()
    try:
        return queryset.get(id=task_id)
    except (TaskRecord.DoesNotExist, ValueError, DjangoValidationError):  # not found, or not a UUID
        raise HttpError(404, f"no task {task_id}") from None


class ListFilters(Schema):
    status: TaskStatus | None = None
    task: str | None = None
    queue: str | None = None
    limit: int = 50
    cursor: str | None = None


def _encode_cursor(record):
    raw = f"{record.enqueued_at.isoformat()}|{record.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_cursor(cursor):
    try:
        stamp, task_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return datetime.fromisoformat(stamp), task_id
    except Exception:
        raise HttpError(400, "invalid cursor") from None


@api.get("/tasks", response={200: TaskPage, **ERRORS}, tags=["tasks"], summary="List tasks")
def list_tasks(request, filters: Query[ListFilters]):
    """Newest first, filtered by status, task and queue; follow `next_cursor` for more."""
    require(request, "read")
    if not 1 <= filters.limit <= 500:
        raise HttpError(400, "limit must be between 1 and 500")
    queryset = visible_tasks(request, TaskRecord.objects.all())
    if filters.status:
        queryset = queryset.filter(status=filters.status)
    if filters.task:
        queryset = queryset.filter(task_path=filters.task)
    if filters.queue:
        queryset = queryset.filter(queue_name=filters.queue)
    if filters.cursor:
        stamp, task_id = _decode_cursor(filters.cursor)
        queryset = queryset.filter(Q(enqueued_at__lt=stamp) | Q(enqueued_at=stamp, id__lt=task_id))
    records = list(queryset.order_by("-enqueued_at", "-id")[: filters.limit + 1])
    more = len(records) > filters.limit
    records = records[: filters.limit]
    return {
        "items": [task_out(r) for r in records],
        "next_cursor": _encode_cursor(records[-1]) if more else None,
    }


@api.post("/tasks/{task_id}/cancel", response={200: TaskOut, **ERRORS}, tags=["tasks"], summary="Cancel a task")
def cancel_task(request, task_id: str):
    """Only a task that has not started (READY) can be cancelled; otherwise 409."""
    require(request, "write")
    with transaction.atomic():
        record = _get_visible(request, task_id, lock=True)
        if record.status != TaskStatus.READY:
            return error_response(409, "not_cancellable", f"task is {record.status}; only READY tasks can be cancelled")
        record.status = TaskStatus.CANCELLED
        record.finished_at = timezone.now()
        record.failure_reason = f"cancelled by token {request.api_token.prefix}…"
        record.save(update_fields=["status", "finished_at", "failure_reason"])
    return task_out(record)


@api.post("/tasks/{task_id}/retry", response={202: TaskOut, **ERRORS}, tags=["tasks"], summary="Retry a task")
def retry_task(request, task_id: str):
    """Run a FAILED or CANCELLED task again (same id; its error history is kept)."""
    require(request, "write")
    with transaction.atomic():
        record = _get_visible(request, task_id, lock=True)
        if record.status not in (TaskStatus.FAILED, TaskStatus.CANCELLED):
            return error_response(
                409, "not_retryable", f"task is {record.status}; only FAILED or CANCELLED tasks can be retried"
            )
        catalog.get(record.task_path)  # a task removed from the catalog cannot run again
        submission.resubmit(record)
    response = api.create_response(request, task_out(record), status=202)
    response["Location"] = _location(record)
    return response


# --- catalog -------------------------------------------------------------------


@api.get("/catalog", response={200: list[CatalogTask], **ERRORS}, tags=["catalog"], summary="Runnable tasks")
def list_catalog(request):
    """Every task that can be submitted, with its parameters, queue and limits."""
    require(request, "read")
    return [entry.describe() for entry in catalog.entries()]


from demo.api import router as demo_router  # noqa: E402  (the demo app's endpoints)

api.add_router("/demo", demo_router)

from services.web.schedules_api import router as schedules_router  # noqa: E402

api.add_router("/schedules", schedules_router)
