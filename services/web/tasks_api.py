"""/api/v1/tasks: submit one or a batch, get, list, cancel, retry.

State changes (cancel, retry) go through conveyor.states, which decides what is allowed;
errors carry their own HTTP status (conveyor.errors).
"""

import uuid

from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from ninja import Field, Header, Query, Router, Schema
from ninja.responses import Status

from conveyor import catalog, states, submission
from conveyor.core.models import TaskRecord, TaskStatus
from conveyor.errors import ConveyorError, CursorNotFound, TaskNotFound
from conveyor.status import FINISHED_STATUSES, status_group
from conveyor.waiting import poll_until
from conveyor.workflows.models import WorkflowStep
from services.web.auth import require, require_runnable, visible_tasks
from services.web.schemas import ERRORS, BatchIn, BatchOut, TaskIn, TaskOut, TaskPage, task_location, task_out
from services.web.task_schemas import NO_NUL

router = Router(tags=["tasks"])
# GET /api/v1/tasks/<id>?wait= holds one web thread at most this long.
MAX_WAIT_SECONDS = 30

IDEMPOTENCY_KEY_LENGTH = 200


def _spec(payload: TaskIn) -> submission.TaskSpec:
    return submission.TaskSpec(
        task_path=payload.task,
        args=payload.args,
        kwargs=payload.kwargs,
        queue_name=payload.queue,
        priority=payload.priority,
        run_after=payload.run_after,
    )


def _prepare(request: HttpRequest, payload: TaskIn) -> TaskRecord:
    """The record to insert, once the token may run the task (its `http` option) and the arguments fit."""
    require_runnable(request, catalog.get(payload.task))
    return submission.prepare(_spec(payload))


@router.post("", response={202: TaskOut, 200: TaskOut, **ERRORS}, summary="Submit a task")
def submit_task(
    request: HttpRequest,
    response: HttpResponse,
    payload: TaskIn,
    idempotency_key: str | None = Header(
        default=None,
        alias="Idempotency-Key",
        min_length=1,
        max_length=IDEMPOTENCY_KEY_LENGTH,
        pattern=NO_NUL,
        description="Repeat the request with the same key: the task is created once",
    ),
) -> Status:
    """Accept one task. 202 means it is stored durably; it is published after commit.

    With an `Idempotency-Key` header, a repeat of the same request returns the
    existing task (200) instead of creating another; the same key with a different
    task or arguments is a 409.
    """
    require(request, "write")
    record = _prepare(request, payload)
    submitted = submission.submit(record, owner=request.api_token, idempotency_key=idempotency_key)
    response["Location"] = task_location(submitted.record)
    if not submitted.created:
        response["Idempotent-Replayed"] = "true"
    return Status(202 if submitted.created else 200, task_out(submitted.record))


@router.post("/batch", response={202: BatchOut, **ERRORS}, summary="Submit up to 1,000 tasks")
def submit_batch(request: HttpRequest, payload: BatchIn) -> Status:
    """All or nothing: if any task is invalid, none is stored and the error names its index."""
    require(request, "write")
    records = []
    for index, item in enumerate(payload.tasks):
        try:
            records.append(_prepare(request, item))
        except ConveyorError as exc:
            raise type(exc)(f"tasks[{index}]: {exc.message}", exc.details) from None
    submission.submit_many(records, owner=request.api_token)
    return Status(202, {"tasks": [task_out(r) for r in records]})


@router.get("/{task_id}", response={200: TaskOut, **ERRORS}, summary="Get a task")
def get_task(
    request: HttpRequest,
    task_id: str,
    wait: float = Query(
        default=0,
        ge=0,
        le=MAX_WAIT_SECONDS,
        description="Seconds to wait for the task to finish before answering (0..30): "
        "the answer comes as soon as it has finished, or after this long with its current state",
    ),
) -> dict:
    require(request, "read")
    record = _get_visible(request, task_id)
    if wait and record.status not in FINISHED_STATUSES:
        # Each read is its own query (this request holds no transaction): a commit by a worker is seen.
        poll_until(lambda: TaskRecord.objects.filter(id=record.id, status__in=FINISHED_STATUSES).exists(), wait)
        record = _get_visible(request, task_id)
    out = task_out(record)
    if record.step_id is not None:
        workflow_id = WorkflowStep.objects.filter(id=record.step_id).values_list("workflow_id", flat=True).first()
        out["workflow"] = None if workflow_id is None else str(workflow_id)
    return out


def _get_visible(request: HttpRequest, task_id: str) -> TaskRecord:
    try:
        return visible_tasks(request, TaskRecord.objects.all()).get(id=uuid.UUID(task_id))
    except (TaskRecord.DoesNotExist, ValueError):  # not found, or not a UUID
        raise TaskNotFound(f"no task {task_id}") from None


class ListFilters(Schema):
    status: TaskStatus | None = None
    task: str | None = Field(default=None, max_length=200)
    queue: str | None = Field(default=None, max_length=100)
    limit: int = Field(default=50, ge=1, le=500, description="Tasks per page")
    cursor: uuid.UUID | None = Field(
        default=None, description="next_cursor of the previous page (the id of its last task)"
    )


def _after(request: HttpRequest, cursor: uuid.UUID) -> Q:
    """Tasks listed after the cursor's task: older, or as old with a smaller id (the list's order)."""
    try:
        last = visible_tasks(request, TaskRecord.objects.all()).only("enqueued_at").get(id=cursor)
    except TaskRecord.DoesNotExist:
        raise CursorNotFound(f"no task {cursor} to continue after; start again without a cursor") from None
    return Q(enqueued_at__lt=last.enqueued_at) | Q(enqueued_at=last.enqueued_at, id__lt=last.id)


@router.get("", response={200: TaskPage, **ERRORS}, summary="List tasks")
def list_tasks(request: HttpRequest, filters: Query[ListFilters]) -> dict:
    """Newest first, filtered by status, task and queue; follow `next_cursor` for more."""
    require(request, "read")
    queryset = visible_tasks(request, TaskRecord.objects.all())
    if filters.status:
        # The group first: it is what the status index is on (conveyor/status.py).
        queryset = queryset.filter(status_group=status_group(filters.status), status=filters.status)
    if filters.task:
        queryset = queryset.filter(task_path=filters.task)
    if filters.queue:
        queryset = queryset.filter(queue_name=filters.queue)
    if filters.cursor:
        queryset = queryset.filter(_after(request, filters.cursor))
    records = list(queryset.order_by("-enqueued_at", "-id")[: filters.limit + 1])
    more = len(records) > filters.limit
    records = records[: filters.limit]
    return {
        "items": [task_out(r, summary=True) for r in records],
        "next_cursor": str(records[-1].id) if more else None,
    }


@router.post("/{task_id}/cancel", response={200: TaskOut, **ERRORS}, summary="Cancel a task")
def cancel_task(request: HttpRequest, task_id: str) -> dict:
    """Only a task that has not started (READY) can be cancelled; otherwise 409."""
    require(request, "write")
    record = _get_visible(request, task_id)
    return task_out(states.cancel(record.id, reason=f"cancelled by token {request.api_token.prefix}…"))


@router.post("/{task_id}/retry", response={202: TaskOut, **ERRORS}, summary="Retry a task")
def retry_task(request: HttpRequest, response: HttpResponse, task_id: str) -> Status:
    """Run a FAILED or CANCELLED task again (same id; its error history is kept)."""
    require(request, "write")
    record = states.retry(_get_visible(request, task_id).id)
    response["Location"] = task_location(record)
    return Status(202, task_out(record))
