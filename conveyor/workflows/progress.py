"""Every change of a workflow's state: start, advance, fail, cancel, retry.

A workflow's steps are ordinary tasks; their own states change in conveyor.states, which
calls `steps_ended` in the same transaction as the task's end, so the counters below move
exactly when the task's row does:

- a step that succeeds counts down `waiting` on each step after it; the step that reaches
  0 gets its task now, with its input (the values of the steps before it) as its first
  argument, through the outbox like every task (the broker may be down);
- a step that fails for good (or is cancelled) fails the workflow: FAILED with the step
  and the reason, steps not started CANCELLED, READY tasks cancelled; running ones finish
  and nothing starts after them. With on_failure="continue" a failed step counts as done
  instead, its value an {"error": ...} object, and the steps after it run;
- `remaining` reaching 0 finishes the workflow with its value.

Locks: the workflow row, then its step rows in id order, always after the task rows of
the outcome, so concurrent fan-ins queue on the workflow row instead of deadlocking; the
last two members of a chord finishing on two workers at once are two transactions, and
only the second sees `waiting` reach 0. A failure is idempotent (closing a closed
workflow does nothing), so a repeated report cannot cancel anything twice.
"""

import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from django.db import connection, transaction
from django.utils import timezone

from conveyor import sql, states, submission
from conveyor.core.models import ApiToken, TaskRecord, TaskSource
from conveyor.errors import NotCancellable, NotRetryable, WorkflowNotFound
from conveyor.status import TaskStatus
from conveyor.workflows.models import FailurePolicy, StepState, Workflow, WorkflowStep
from conveyor.workflows.plan import Plan, evaluate, positions

OPEN = TaskStatus.READY  # a workflow's stored status while it runs (shown RUNNING once a step started)
ERROR_LENGTH = 2000


class StepEnd(NamedTuple):
    """A step's task reached a final status (reported by conveyor.states)."""

    step_id: int
    status: str  # SUCCESSFUL, FAILED or CANCELLED
    reason: str = ""


# --- start ------------------------------------------------------------------------------


def start(
    plan: Plan,
    spec: dict[str, Any],
    *,
    owner: ApiToken | None = None,
    source: str = TaskSource.DJANGO,
    on_failure: str = FailurePolicy.FAIL,
    schedule_name: str | None = None,
    fire_time: Any = None,
) -> Workflow:
    """Store a compiled workflow and start the steps that wait for nothing, in one transaction."""
    with transaction.atomic():
        workflow = Workflow.objects.create(
            owner=owner,
            source=source,
            on_failure=on_failure,
            spec=spec,
            result=plan.result,
            step_count=len(plan.steps),
            remaining=len(plan.steps),
            schedule_name=schedule_name,
            fire_time=fire_time,
        )
        steps = WorkflowStep.objects.bulk_create(
            [
                WorkflowStep(
                    workflow=workflow,
                    position=s.position,
                    path=s.path,
                    task_path=s.signature.task_path,
                    args=list(s.signature.args),
                    kwargs=dict(s.signature.kwargs),
                    queue_name=s.queue_name,
                    priority=s.priority,
                    input=s.input,
                    depends_on=s.depends_on,
                    then=s.then,
                    waiting=len(s.depends_on),
                )
                for s in plan.steps
            ],
            batch_size=1000,
        )
        _start_steps(workflow, [s for s in steps if s.waiting == 0])
    return workflow


def _start_steps(workflow: Workflow, steps: Sequence[WorkflowStep]) -> None:
    """Give each step its task (row and outbox entry, published after commit)."""
    if not steps:
        return
    values = _values(workflow, [p for s in steps for p in positions(s.input)])
    records = []
    for step in steps:
        args = list(step.args)
        if step.input is not None:
            args.insert(0, evaluate(step.input, values))
        records.append(
            TaskRecord(
                task_path=step.task_path,
                args=args,
                kwargs=dict(step.kwargs),
                queue_name=step.queue_name,
                priority=step.priority,
                step_id=step.id,
            )
        )
    submission.submit_many(records, source=workflow.source, owner_id=workflow.owner_id)
    for step, record in zip(steps, records, strict=True):
        step.task_id, step.state = record.id, StepState.STARTED
    WorkflowStep.objects.bulk_update(steps, ["task", "state"], batch_size=1000)


def _values(workflow: Workflow, wanted: Iterable[int]) -> dict[int, Any]:
    """{position: value} of finished steps: the return value, or {"error": ...} for a failed step."""
    wanted = sorted(set(wanted))
    if not wanted:
        return {}
    rows = WorkflowStep.objects.filter(workflow=workflow, position__in=wanted).values_list(
        "position", "task_id", "task__status", "task__return_value", "task__errors", "task__failure_reason"
    )
    values = {}
    for position, task_id, status, value, errors, reason in rows:
        if status == TaskStatus.SUCCESSFUL:
            values[position] = value
        else:
            last = errors[-1] if errors else {}
            values[position] = {
                "error": {
                    "task_id": str(task_id),
                    "status": status,
                    "exception_class_path": last.get("exception_class_path", ""),
                    "message": last.get("message", "") or reason,
                }
            }
    return values


# --- advance (called by conveyor.states, inside the transaction of the task's end) -------


def steps_ended(ends: Sequence[StepEnd]) -> None:
    """Count the ends of these steps' tasks, each once, in the caller's transaction."""
    if not ends:
        return
    by_id = {e.step_id: e for e in ends}
    # The open workflows of these steps, locked in id order, in one statement.
    open_workflows = list(
        Workflow.objects.select_for_update()
        .filter(id__in=WorkflowStep.objects.filter(id__in=list(by_id)).values("workflow_id"), status=OPEN)
        .order_by("id")
    )
    if not open_workflows:
        return  # a report for an ended workflow (it failed or was cancelled meanwhile): nothing to do
    steps = _count_once(list(by_id), open_workflows)
    for workflow in open_workflows:
        mine = [s for s in steps if s.workflow_id == workflow.id]
        if mine:
            _advance(workflow, [(s, by_id[s.id]) for s in mine])


def _count_once(step_ids: list[int], workflows: list[Workflow]) -> list[WorkflowStep]:
    """Mark these steps counted, and return those that were not yet (one UPDATE ... RETURNING).

    Raw SQL for the hot part of a fan-in: the ORM needs a locking SELECT and an UPDATE.
    """
    table = connection.ops.quote_name(WorkflowStep._meta.db_table)
    pk = Workflow._meta.pk
    statement = (
        f"UPDATE {table} SET counted = %s WHERE id IN ({', '.join(['%s'] * len(step_ids))}) AND counted = %s "
        f"AND workflow_id IN ({', '.join(['%s'] * len(workflows))}) "
        'RETURNING id, workflow_id, position, "then", task_path, path'
    )
    params = [True, *step_ids, False, *(pk.get_db_prep_value(w.id, connection) for w in workflows)]
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        rows = cursor.fetchall()
    return [
        WorkflowStep(
            id=step_id,
            workflow_id=_uuid(workflow_id),
            position=position,
            then=sql.from_json(then),
            task_path=task_path,
            path=path,
        )
        for step_id, workflow_id, position, then, task_path, path in sorted(rows)
    ]


def _count_down(workflow: Workflow, counts: Counter) -> list[WorkflowStep]:
    """Subtract from `waiting` of the steps after those that ended; return those that reached 0 and wait."""
    table = connection.ops.quote_name(WorkflowStep._meta.db_table)
    cases = " ".join("WHEN %s THEN %s" for _ in counts)
    statement = (
        f"UPDATE {table} SET waiting = waiting - CASE position {cases} ELSE 0 END "
        f"WHERE workflow_id = %s AND position IN ({', '.join(['%s'] * len(counts))}) "
        "RETURNING id, position, waiting, state, input, args, kwargs, task_path, queue_name, priority"
    )
    params = [x for item in counts.items() for x in item]
    params += [Workflow._meta.pk.get_db_prep_value(workflow.id, connection), *counts]
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        rows = cursor.fetchall()
    return [
        WorkflowStep(
            id=step_id,
            workflow_id=workflow.id,
            position=position,
            waiting=waiting,
            state=state,
            input=sql.from_json(given),
            args=sql.from_json(args),
            kwargs=sql.from_json(kwargs),
            task_path=task_path,
            queue_name=queue_name,
            priority=priority,
        )
        for step_id, position, waiting, state, given, args, kwargs, task_path, queue_name, priority in sorted(rows)
        if waiting == 0 and state == StepState.WAITING
    ]


def _uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _advance(workflow: Workflow, ended: list[tuple[WorkflowStep, StepEnd]]) -> None:
    failed = [(s, e) for s, e in ended if e.status != TaskStatus.SUCCESSFUL]
    cancelled = [(s, e) for s, e in failed if e.status == TaskStatus.CANCELLED]
    if cancelled or (failed and workflow.on_failure == FailurePolicy.FAIL):
        step, end = (cancelled or failed)[0]
        word = "was cancelled" if end.status == TaskStatus.CANCELLED else "failed"
        _close(
            workflow,
            TaskStatus.CANCELLED if cancelled else TaskStatus.FAILED,
            f"step {step.position} ({_step_label(step)}) {word}: {end.reason or end.status}",
            failed_step=step.position,
        )
        return
    done = [s for s, _ in ended]
    workflow.remaining -= len(done)
    counts = Counter(p for s in done for p in s.then)
    if counts:
        _start_steps(workflow, _count_down(workflow, counts))
    fields = ["remaining"]
    if workflow.remaining == 0:
        values = _values(workflow, positions(workflow.result))
        exits_failed = any(isinstance(v, dict) and set(v) == {"error"} for v in _leaves(workflow.result, values))
        workflow.status = TaskStatus.FAILED if exits_failed else TaskStatus.SUCCESSFUL
        workflow.return_value = evaluate(workflow.result, values)
        workflow.finished_at = timezone.now()
        if exits_failed:
            workflow.error = "its last step failed (on_failure=continue)"
        fields += ["status", "return_value", "finished_at", "error"]
    workflow.save(update_fields=fields)


def _leaves(expression: Any, values: dict[int, Any]) -> list[Any]:
    return [values[p] for p in positions(expression)]


def _step_label(step: WorkflowStep) -> str:
    return f"{step.task_path} at {step.path}"


def _close(workflow: Workflow, status: str, error: str, *, failed_step: int | None = None) -> None:
    """End an open workflow: steps not started are CANCELLED, READY tasks cancelled, running ones finish."""
    workflow.status = status
    workflow.error = error[:ERROR_LENGTH]
    workflow.failed_step = failed_step
    workflow.finished_at = timezone.now()
    workflow.save(update_fields=["status", "error", "failed_step", "finished_at"])
    WorkflowStep.objects.filter(workflow=workflow, state=StepState.WAITING).update(state=StepState.CANCELLED)
    ready = WorkflowStep.objects.filter(
        workflow=workflow, state=StepState.STARTED, task__status=TaskStatus.READY
    ).values_list("task_id", flat=True)
    states.cancel_many(list(ready), reason=f"workflow {workflow.id} ended {status}")


# --- operators ---------------------------------------------------------------------------


def _locked(workflow_id: Any) -> Workflow:
    try:
        return Workflow.objects.select_for_update().get(id=workflow_id)
    except (Workflow.DoesNotExist, ValueError):
        raise WorkflowNotFound(f"no workflow {workflow_id}") from None


def cancel(workflow_id: Any) -> Workflow:
    """An open workflow -> CANCELLED. Raises WorkflowNotFound, or NotCancellable once it ended."""
    with transaction.atomic():
        workflow = _locked(workflow_id)
        if workflow.status != OPEN:
            raise NotCancellable(f"workflow is {workflow.status}; only a running workflow can be cancelled")
        _close(workflow, TaskStatus.CANCELLED, "cancelled")
    return workflow


def retry(workflow_id: Any) -> Workflow:
    """A FAILED or CANCELLED workflow runs again from where it stopped; steps that succeeded are kept.

    Failed and cancelled tasks are retried (same task ids); steps that never started wait
    again for the steps before them, and start now if those have all succeeded.
    """
    with transaction.atomic():
        workflow = _locked(workflow_id)
        if workflow.status not in (TaskStatus.FAILED, TaskStatus.CANCELLED):
            raise NotRetryable(f"workflow is {workflow.status}; only FAILED or CANCELLED workflows can be retried")
        steps = list(WorkflowStep.objects.filter(workflow=workflow).select_related("task").order_by("position"))
        if any(s.state == StepState.STARTED and s.task is None for s in steps):
            raise NotRetryable("some of its tasks were deleted (purged); it cannot be resumed")
        status = {s.position: (s.task.status if s.task else None) for s in steps}
        workflow.status, workflow.error, workflow.failed_step = OPEN, "", None
        workflow.finished_at, workflow.return_value = None, None
        workflow.remaining = sum(1 for s in steps if status[s.position] != TaskStatus.SUCCESSFUL)
        workflow.save(update_fields=["status", "error", "failed_step", "finished_at", "return_value", "remaining"])
        again, ready = [], []
        for step in steps:
            # What the counters now say was counted: exactly the steps that succeeded.
            step.counted = status[step.position] == TaskStatus.SUCCESSFUL
            if step.state == StepState.STARTED:
                if status[step.position] in (TaskStatus.FAILED, TaskStatus.CANCELLED):
                    again.append(step)
                continue
            step.state = StepState.WAITING
            step.waiting = sum(1 for p in step.depends_on if status[p] != TaskStatus.SUCCESSFUL)
            if step.waiting == 0:
                ready.append(step)
        WorkflowStep.objects.bulk_update(steps, ["state", "waiting", "counted"], batch_size=1000)
        for step in again:
            states.retry(step.task_id, workflow_step=True)
        _start_steps(workflow, ready)
    return workflow
