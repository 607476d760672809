"""Workflows and their steps (Django app label `conveyor`; imported by conveyor.core.models).

A workflow is a tree of chains and groups compiled into steps (conveyor.workflows.plan).
Each step becomes an ordinary task (a TaskRecord with `step_id`) once every step it
depends on has succeeded; until then it has no task and its status is WAITING. The
counters that decide this (`Workflow.remaining`, `WorkflowStep.waiting`) change in the
same transaction as the task outcome that moves them (conveyor.workflows.progress), so a
fan-in happens exactly once, whatever the workers and the broker do.
"""

import uuid

from django.db import models

from conveyor.status import TaskSource, TaskStatus


class FailurePolicy(models.TextChoices):
    FAIL = "fail"  # a step that fails for good fails the workflow; later steps are CANCELLED
    CONTINUE = "continue"  # a failed step's value is its error; the steps after it still run


class StepState(models.TextChoices):
    WAITING = "WAITING"  # steps before it have not all succeeded: no task yet
    STARTED = "STARTED"  # its task exists (its status is the task's)
    CANCELLED = "CANCELLED"  # the workflow ended before it started: it never gets a task


class Workflow(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # READY while open (shown RUNNING once a step started), then SUCCESSFUL, FAILED or CANCELLED.
    status = models.CharField(max_length=10, choices=TaskStatus.choices, default=TaskStatus.READY)
    owner = models.ForeignKey(
        "conveyor.ApiToken", null=True, blank=True, on_delete=models.SET_NULL, related_name="workflows"
    )
    source = models.CharField(max_length=10, choices=TaskSource.choices, default=TaskSource.API)
    on_failure = models.CharField(max_length=10, choices=FailurePolicy.choices, default=FailurePolicy.FAIL)
    # The workflow as submitted, in the HTTP form (conveyor.workflows.canvas.to_json).
    spec = models.JSONField()
    # Which steps' values make the workflow's return value: {"step": n} or {"list": [...]}.
    result = models.JSONField()
    return_value = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    failed_step = models.PositiveIntegerField(null=True, blank=True)
    step_count = models.PositiveIntegerField()
    # Steps that have not yet succeeded (or, with on_failure=continue, ended); 0: finished.
    remaining = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    schedule_name = models.CharField(max_length=200, null=True, blank=True)
    fire_time = models.DateTimeField(null=True, blank=True)

    class Meta:
        app_label = "conveyor"
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["owner", "-created_at"], name="workflow_owner_idx"),
            models.Index(fields=["status", "finished_at"], name="workflow_status_idx"),
        ]

    def __str__(self):
        return f"workflow {self.id} {self.status}"


class WorkflowStep(models.Model):
    id = models.BigAutoField(primary_key=True)
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveIntegerField()  # 0.. in the order the steps were written
    path = models.TextField()  # where it is in the tree, e.g. "workflow.chain[2].group[0]" (64 levels at most)
    task_path = models.CharField(max_length=200)
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    queue_name = models.CharField(max_length=100)
    priority = models.SmallIntegerField(default=0)
    # Its input: the value passed as its first argument, from the steps before it, or null.
    input = models.JSONField(null=True, blank=True)
    depends_on = models.JSONField(default=list)  # positions of the steps it waits for
    then = models.JSONField(default=list)  # positions of the steps that wait for it
    waiting = models.PositiveIntegerField()  # steps it depends on that have not succeeded yet
    state = models.CharField(max_length=10, choices=StepState.choices, default=StepState.WAITING)
    # Its task's end has been counted (in `waiting` of the steps after it, and `remaining`):
    # a repeated report of the same end changes nothing.
    counted = models.BooleanField(default=False)
    task = models.ForeignKey("conveyor.TaskRecord", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        app_label = "conveyor"
        ordering = ["workflow", "position"]
        constraints = [models.UniqueConstraint(fields=["workflow", "position"], name="workflow_step_unique")]

    def __str__(self):
        return f"step {self.position} of {self.workflow_id}: {self.task_path}"
