"""/api/v1/workflows: submit a chain, group or chord; follow, cancel and retry it.

The tree is checked whole before anything is stored (conveyor.workflows.plan): an unknown
task, arguments that do not fit, an empty group or too many steps is a 400 naming the step.
Every step's task must be one the token may run over HTTP, as for POST /api/v1/tasks.
A token sees and acts on its own workflows only, unless it is admin.
"""

from datetime import datetime
from typing import Annotated, Any, Literal, Union

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from ninja import Body, Query, Router, Schema
from ninja.responses import Status
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from conveyor import catalog
from conveyor.errors import Forbidden, WorkflowNotFound
from conveyor.waiting import poll_until
from conveyor.workflows import canvas, handle, plan, progress
from conveyor.workflows.models import FailurePolicy, Workflow
from services.web.auth import require, require_runnable
from services.web.schemas import ERRORS

router = Router(tags=["workflows"])
MAX_WAIT_SECONDS = 30  # as GET /api/v1/tasks/<id>?wait=

TASK_NAME = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$"


class _Strict(BaseModel):
    # pydantic's BaseModel, not ninja's Schema: Schema's wrap validator runs a model with
    # extra="forbid" twice, which on a recursive model is 2^depth runs (a 30-level body held
    # a web thread for minutes). Nothing here is read from the ORM, which is what Schema adds.
    model_config = ConfigDict(extra="forbid", strict=True)


class TaskNode(_Strict):
    task: str = Field(max_length=200, pattern=TASK_NAME, description="Catalog name, e.g. demo.tasks.add")
    args: list[Any] = Field(
        default_factory=list, description="After the value it receives from the step before it, if any"
    )
    kwargs: dict[str, Any] = Field(default_factory=dict)
    queue: str | None = None
    priority: int | None = Field(default=None, ge=-100, le=100)


class ChainNode(_Strict):
    chain: list["Node"] = Field(min_length=1, description="Run one after the other; each gets the previous value")


class GroupNode(_Strict):
    group: list["Node"] = Field(min_length=1, description="Run at once; the value is the list of theirs, in order")


class ChordBody(_Strict):
    group: list["Node"] = Field(min_length=1)
    then: "Node" = Field(description="Runs once every member succeeded, with the list of their values")


class ChordNode(_Strict):
    chord: ChordBody


def _kind(value: Any) -> str | None:
    """Which kind of node a body is, by its key: validation then tries that kind alone.

    A plain union would try every kind at every level of a nested body, which grows as
    4^depth: a small, deeply nested body could hold a web thread for minutes.
    """
    has = (lambda k: k in value) if isinstance(value, dict) else (lambda k: hasattr(value, k))
    found = [k for k in ("chain", "group", "chord", "task") if has(k)]
    return found[0] if len(found) == 1 else None


def _tagged(*kinds: tuple[type, str]) -> Any:
    return Annotated[
        Union[tuple(Annotated[model, Tag(tag)] for model, tag in kinds)],  # noqa: UP007
        Discriminator(_kind, custom_error_type="invalid_node", custom_error_message=NODE_ERROR),
    ]


NODE_ERROR = "expected an object with exactly one of chain, group, chord or task"
Node = _tagged((ChainNode, "chain"), (GroupNode, "group"), (ChordNode, "chord"), (TaskNode, "task"))


OnFailure = Literal["fail", "continue"]
ON_FAILURE = Field(
    default="fail",
    description="fail: a step that fails for good fails the workflow (later steps CANCELLED); "
    "continue: its value is {error: ...} and the steps after it run",
)


# The body is one node (exactly one of chain, group, chord or a task) and its failure policy.
class ChainWorkflow(ChainNode):
    on_failure: OnFailure = ON_FAILURE


class GroupWorkflow(GroupNode):
    on_failure: OnFailure = ON_FAILURE


class ChordWorkflow(ChordNode):
    on_failure: OnFailure = ON_FAILURE


class TaskWorkflow(TaskNode):
    on_failure: OnFailure = ON_FAILURE


WorkflowIn = _tagged(
    (ChainWorkflow, "chain"), (GroupWorkflow, "group"), (ChordWorkflow, "chord"), (TaskWorkflow, "task")
)


for _model in (ChainNode, GroupNode, ChordBody, ChainWorkflow, GroupWorkflow, ChordWorkflow):
    _model.model_rebuild()


class StepOut(Schema):
    position: int
    path: str = Field(description='Where the step is in the workflow, e.g. "workflow.chain[1].group[0]"')
    task: str
    task_id: str | None = Field(description="Its task (GET /api/v1/tasks/<id>), once it has one")
    status: str = Field(description="Its task's status; WAITING before it has a task; CANCELLED if it never will")


class WorkflowOut(Schema):
    id: str
    status: str = Field(description="READY, RUNNING, SUCCESSFUL, FAILED or CANCELLED")
    return_value: Any = Field(default=None, description="The last step's value, or the list of a group's")
    error: str = Field(description="Which step failed, and why")
    created_at: datetime
    finished_at: datetime | None = None
    steps: list[StepOut]


def workflow_location(workflow_id: Any) -> str:
    return f"/api/v1/workflows/{workflow_id}"


def workflow_out(result: handle.WorkflowResult) -> dict[str, Any]:
    return {
        "id": result.id,
        "status": result.status,
        "return_value": result.return_value,
        "error": result.error,
        "created_at": result.created_at,
        "finished_at": result.finished_at,
        "steps": [
            {"position": s.position, "path": s.path, "task": s.task_path, "task_id": s.task_id, "status": s.status}
            for s in result.steps
        ],
    }


def _visible(request: HttpRequest, workflow_id: str) -> Workflow:
    queryset = Workflow.objects.all()
    if not request.api_token.is_admin:
        queryset = queryset.filter(owner=request.api_token)
    try:
        return queryset.get(id=workflow_id)
    except (Workflow.DoesNotExist, ValueError, ValidationError):
        raise WorkflowNotFound(f"no workflow {workflow_id}") from None


@router.post("", response={202: WorkflowOut, **ERRORS}, summary="Submit a workflow")
def submit_workflow(request: HttpRequest, response: HttpResponse, payload: Body[WorkflowIn]) -> Status:
    """A chain, group or chord (nested as in Python), or one task. 202: stored, its first steps enqueued."""
    require(request, "write")
    body = payload.model_dump(exclude_unset=True, exclude={"on_failure"})
    root = canvas.from_json(body)
    compiled = plan.compile_tree(root)
    for step in compiled.steps:
        try:
            require_runnable(request, catalog.get(step.signature.task_path))
        except Forbidden as exc:
            raise Forbidden(f"{step.path}: {exc.message}", {"step": step.path}) from None
    workflow = progress.start(
        compiled,
        canvas.to_json(root),
        owner=request.api_token,
        source="api",
        on_failure=FailurePolicy(payload.on_failure),
    )
    response["Location"] = workflow_location(workflow.id)
    return Status(202, workflow_out(handle.describe(workflow)))


@router.get("/{workflow_id}", response={200: WorkflowOut, **ERRORS}, summary="Get a workflow")
def get_workflow(
    request: HttpRequest,
    workflow_id: str,
    wait: float = Query(
        default=0,
        ge=0,
        le=MAX_WAIT_SECONDS,
        description="Seconds to wait for the workflow to finish before answering (0..30)",
    ),
) -> dict:
    require(request, "read")
    workflow = _visible(request, workflow_id)
    if wait and workflow.status == progress.OPEN:
        poll_until(lambda: not Workflow.objects.filter(id=workflow.id, status=progress.OPEN).exists(), wait)
        workflow = _visible(request, workflow_id)
    return workflow_out(handle.describe(workflow))


@router.post("/{workflow_id}/cancel", response={200: WorkflowOut, **ERRORS}, summary="Cancel a workflow")
def cancel_workflow(request: HttpRequest, workflow_id: str) -> dict:
    """Steps not started are cancelled, running ones finish, nothing after them starts; 409 once it ended."""
    require(request, "write")
    return workflow_out(handle.describe(progress.cancel(_visible(request, workflow_id).id)))


@router.post("/{workflow_id}/retry", response={202: WorkflowOut, **ERRORS}, summary="Retry a workflow")
def retry_workflow(request: HttpRequest, response: HttpResponse, workflow_id: str) -> Status:
    """A FAILED or CANCELLED workflow resumes from its failed steps; steps that succeeded are not run again."""
    require(request, "write")
    workflow = progress.retry(_visible(request, workflow_id).id)
    response["Location"] = workflow_location(workflow.id)
    return Status(202, workflow_out(handle.describe(workflow)))
