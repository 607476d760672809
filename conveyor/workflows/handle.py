"""Enqueueing a workflow from Django code, and following it: `wf.wait(timeout=30).return_value`."""

from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError

from conveyor.core.models import TaskSource
from conveyor.errors import WorkflowNotFound
from conveyor.status import TaskStatus
from conveyor.waiting import poll_until
from conveyor.workflows import canvas, plan, progress
from conveyor.workflows.models import FailurePolicy, StepState, Workflow, WorkflowStep


@dataclass
class WorkflowStepResult:
    position: int
    path: str
    task_path: str
    task_id: str | None
    status: str  # the task's status, or WAITING / CANCELLED while it has no task


@dataclass
class WorkflowResult:
    """A workflow as last read: `refresh()` reads it again, `wait()` until it has finished."""

    id: str
    status: str
    return_value: Any = None
    error: str = ""
    steps: list[WorkflowStepResult] = field(default_factory=list)
    created_at: Any = None
    finished_at: Any = None

    @property
    def is_finished(self) -> bool:
        return self.status in (TaskStatus.SUCCESSFUL, TaskStatus.FAILED, TaskStatus.CANCELLED)

    def refresh(self) -> "WorkflowResult":
        fresh = get(self.id)
        self.__dict__.update(fresh.__dict__)
        return self

    def wait(self, timeout: float = 30.0) -> "WorkflowResult":
        """Until the workflow has finished, at most `timeout` seconds (TimeoutError after)."""
        if not poll_until(lambda: self.refresh().is_finished, timeout):
            raise TimeoutError(f"workflow {self.id} is still {self.status} after {timeout}s")
        return self


def enqueue(
    root: canvas.Node,
    *,
    on_failure: str = FailurePolicy.FAIL,
    owner: Any = None,
    source: str = TaskSource.DJANGO,
    schedule_name: str | None = None,
    fire_time: Any = None,
) -> WorkflowResult:
    """Check the tree, store it and start its first steps (inside the caller's transaction, if any)."""
    if on_failure not in FailurePolicy.values:
        raise ValueError(f"on_failure must be one of {', '.join(FailurePolicy.values)}")
    compiled = plan.compile_tree(root)
    workflow = progress.start(
        compiled,
        canvas.to_json(root),
        owner=owner,
        source=source,
        on_failure=on_failure,
        schedule_name=schedule_name,
        fire_time=fire_time,
    )
    return describe(workflow)


def get(workflow_id: Any) -> WorkflowResult:
    try:
        workflow = Workflow.objects.get(id=workflow_id)
    except (Workflow.DoesNotExist, ValueError, ValidationError):  # not found, or not a UUID
        raise WorkflowNotFound(f"no workflow {workflow_id}") from None
    return describe(workflow)


def describe(workflow: Workflow) -> WorkflowResult:
    rows = (
        WorkflowStep.objects.filter(workflow=workflow)
        .order_by("position")
        .values_list("position", "path", "task_path", "task_id", "state", "task__status")
    )
    steps = [
        WorkflowStepResult(
            position, path, task_path, None if task_id is None else str(task_id), str(task_status or _no_task(state))
        )
        for position, path, task_path, task_id, state, task_status in rows
    ]
    return WorkflowResult(
        id=str(workflow.id),
        status=str(shown_status(workflow.status, [s.status for s in steps])),
        return_value=workflow.return_value,
        error=workflow.error,
        steps=steps,
        created_at=workflow.created_at,
        finished_at=workflow.finished_at,
    )


def shown_status(stored: str, step_statuses: list[str]) -> str:
    """READY until one of its steps has started, RUNNING from then until it ends."""
    if stored == progress.OPEN and any(s not in (TaskStatus.READY, StepState.WAITING) for s in step_statuses):
        return TaskStatus.RUNNING
    return stored


def _no_task(state: str) -> str:
    # A step with no task is waiting for the steps before it, or was cancelled before it started.
    return StepState.CANCELLED.value if state == StepState.CANCELLED else StepState.WAITING.value
