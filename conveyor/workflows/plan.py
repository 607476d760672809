"""Checking a workflow tree and compiling it into steps, before anything is stored.

Every step is checked as `.enqueue()` checks a task: the task exists, its arguments bind
to its signature with the declared JSON types (a step that receives the previous value
has that first argument left for it), its queue is configured. Empty chains and groups,
trees that contain themselves, trees nested deeper than MAX_DEPTH and workflows of more
than CONVEYOR_WORKFLOW_MAX_STEPS steps are refused. Every error is an InvalidWorkflow that
names the step (`details.step`), and nothing is created.

The compiled form: each step knows the expression of its input (`None`, `{"step": n}` or
`{"list": [...]}`), the steps it waits for, and the steps that wait for it.
"""

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from conveyor import catalog
from conveyor.errors import ClientError, InvalidWorkflow
from conveyor.workflows.canvas import MAX_DEPTH, Chain, Chord, Group, Node, Signature


@dataclass
class StepPlan:
    position: int
    path: str
    signature: Signature
    queue_name: str
    priority: int
    input: Any  # None, {"step": n} or {"list": [...]}
    depends_on: list[int]
    then: list[int] = field(default_factory=list)


@dataclass
class Plan:
    steps: list[StepPlan]
    result: Any  # the expression of the workflow's value


def compile_tree(root: Node) -> Plan:
    steps: list[StepPlan] = []
    limit = settings.CONVEYOR_WORKFLOW_MAX_STEPS

    def walk(node: Any, given: Any, path: str, depth: int, inside: frozenset[int]) -> Any:
        if depth > MAX_DEPTH:
            raise InvalidWorkflow(f"{path}: nested more than {MAX_DEPTH} levels deep", {"step": path})
        if id(node) in inside:
            raise InvalidWorkflow(f"{path}: the workflow contains itself (a cycle)", {"step": path})
        if isinstance(node, Signature):
            if len(steps) >= limit:
                raise InvalidWorkflow(f"{path}: more than {limit} steps in one workflow", {"step": path})
            steps.append(_step(node, len(steps), path, given))
            return {"step": len(steps) - 1}
        if not isinstance(node, Chain):
            raise InvalidWorkflow(
                f"{path}: expected a task signature (task.s(...)), chain, group or chord, got {type(node).__name__}",
                {"step": path},
            )
        inside = inside | {id(node)}
        if isinstance(node, Chord):
            if not node.header.parts:
                raise InvalidWorkflow(f"{path}.chord.group: empty group", {"step": f"{path}.chord.group"})
            values = walk(node.header, given, f"{path}.chord", depth + 1, inside)
            return walk(node.then, values, f"{path}.chord.then", depth + 1, inside)
        kind = "group" if isinstance(node, Group) else "chain"
        if not node.parts:
            raise InvalidWorkflow(f"{path}: empty {kind}", {"step": path})
        if kind == "group":
            return {"list": [walk(p, given, f"{path}.group[{i}]", depth + 1, inside) for i, p in enumerate(node.parts)]}
        value = given
        for i, part in enumerate(node.parts):
            value = walk(part, value, f"{path}.chain[{i}]", depth + 1, inside)
        return value

    result = walk(root, None, "workflow", 0, frozenset())
    for step in steps:
        for before in step.depends_on:
            steps[before].then.append(step.position)
    return Plan(steps, result)


def positions(expression: Any) -> list[int]:
    """The steps an input expression reads, in order, each once."""
    found: dict[int, None] = {}

    def visit(e: Any) -> None:
        if e is None:
            return
        if "step" in e:
            found[e["step"]] = None
        else:
            for item in e["list"]:
                visit(item)

    visit(expression)
    return list(found)


def evaluate(expression: Any, values: dict[int, Any]) -> Any:
    """The value of an expression, given each step's value."""
    if expression is None:
        return None
    if "step" in expression:
        return values[expression["step"]]
    return [evaluate(e, values) for e in expression["list"]]


def _step(signature: Signature, position: int, path: str, given: Any) -> StepPlan:
    try:
        entry = catalog.get(signature.task_path)
        entry.validate(list(signature.args), dict(signature.kwargs), injected=given is not None)
    except ClientError as exc:
        details = {"step": path, "code": exc.code}
        if exc.details is not None:
            details["problems"] = exc.details
        raise InvalidWorkflow(f"{path}: {exc.message}", details) from None
    queue_name = entry.task.queue_name if signature.queue_name is None else signature.queue_name
    if queue_name not in settings.CONVEYOR_QUEUES:
        raise InvalidWorkflow(
            f"{path}: unknown queue {queue_name!r}; configured queues: {', '.join(settings.CONVEYOR_QUEUES)}",
            {"step": path, "code": "unknown_queue"},
        )
    priority = entry.task.priority if signature.priority is None else signature.priority
    return StepPlan(position, path, signature, queue_name, priority, given, positions(given))
