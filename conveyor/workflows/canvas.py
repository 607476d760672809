"""What a workflow is made of: task signatures, chains, groups and chords.

    from conveyor.workflows import chain, group, chord
    chain(add.s(1, 2), add.s(3), add.s(4)).enqueue()      # each step gets the previous result first
    chord(group(add.s(i, i) for i in range(100)), total.s()).enqueue()

A chain runs its parts one after the other, each receiving the previous part's value as
its first argument; a group runs its parts at once, each receiving the value the group
received, and its value is the list of theirs, in order; a chord is a chain of a group
and a callback. Parts nest freely. The same tree has a JSON form for the HTTP API:

    {"task": "demo.tasks.add", "args": [1], "kwargs": {}, "queue": null, "priority": null}
    {"chain": [node, ...]}   {"group": [node, ...]}   {"chord": {"group": [node, ...], "then": node}}

This module only describes; conveyor.workflows.plan checks and compiles a tree into
steps, conveyor.workflows.progress stores and runs it.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from conveyor.errors import InvalidWorkflow

NODE_KINDS = ("task", "chain", "group", "chord")


@dataclass(frozen=True)
class Signature:
    """A task with some of its arguments: `add.s(1)`. A step in a chain gets one more, first."""

    task_path: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    queue_name: str | None = None
    priority: int | None = None

    def enqueue(self, **options: Any) -> "Any":
        return chain(self).enqueue(**options)


class Chain:
    def __init__(self, *parts: "Node | Iterable[Node]") -> None:
        self.parts = _flatten_arguments(parts)

    def enqueue(self, **options: Any) -> "Any":
        """Store the workflow and start its first steps; see conveyor.workflows.enqueue."""
        from conveyor.workflows.handle import enqueue

        return enqueue(self, **options)


class Group(Chain):
    pass


class Chord(Chain):
    def __init__(self, header: "Group | Iterable[Node]", then: "Node") -> None:
        self.header = header if isinstance(header, Group) else Group(header)
        self.then = then
        self.parts = [self.header, then]


Node = Signature | Chain | Group | Chord


def chain(*parts: "Node | Iterable[Node]") -> Chain:
    return Chain(*parts)


def group(*parts: "Node | Iterable[Node]") -> Group:
    return Group(*parts)


def chord(header: "Group | Iterable[Node]", then: Node) -> Chord:
    return Chord(header, then)


def _flatten_arguments(parts: tuple) -> list:
    # group(add.s(i, i) for i in range(10)) and group(add.s(1), add.s(2)) both work.
    if len(parts) == 1 and not isinstance(parts[0], Signature | Chain) and isinstance(parts[0], Iterable):
        return list(parts[0])
    return list(parts)


def to_json(node: Node) -> dict[str, Any]:
    """The HTTP form of a tree (stored with the workflow, so it can be read back as written)."""
    if isinstance(node, Signature):
        out: dict[str, Any] = {"task": node.task_path, "args": list(node.args), "kwargs": dict(node.kwargs)}
        if node.queue_name is not None:
            out["queue"] = node.queue_name
        if node.priority is not None:
            out["priority"] = node.priority
        return out
    if isinstance(node, Chord):
        return {"chord": {"group": [to_json(p) for p in node.header.parts], "then": to_json(node.then)}}
    if isinstance(node, Group):
        return {"group": [to_json(p) for p in node.parts]}
    return {"chain": [to_json(p) for p in node.parts]}


# Deeper trees are refused (conveyor.workflows.plan says the same); checked while reading,
# so a deeply nested body never reaches Python's recursion limit.
MAX_DEPTH = 64


def from_json(data: Any, where: str = "workflow", depth: int = 0) -> Node:
    """A tree from its HTTP form; InvalidWorkflow names the node that is wrong."""
    if depth > MAX_DEPTH:
        raise InvalidWorkflow(f"{where}: nested more than {MAX_DEPTH} levels deep", {"step": where})
    if not isinstance(data, Mapping):
        raise InvalidWorkflow(f"{where}: expected an object with one of {', '.join(NODE_KINDS)}", {"step": where})
    kinds = [k for k in NODE_KINDS if k in data]
    if len(kinds) != 1:
        raise InvalidWorkflow(f"{where}: expected exactly one of {', '.join(NODE_KINDS)}", {"step": where})
    kind = kinds[0]
    allowed = {"task": {"task", "args", "kwargs", "queue", "priority"}}.get(kind, {kind})
    extra = sorted(set(data) - allowed)
    if extra:
        raise InvalidWorkflow(f"{where}: unexpected field(s) {', '.join(extra)}", {"step": where})
    if kind == "task":
        return _signature_from_json(data, where)
    if kind == "chord":
        body = data["chord"]
        if not isinstance(body, Mapping) or set(body) != {"group", "then"}:
            raise InvalidWorkflow(f"{where}.chord: expected an object with exactly `group` and `then`", {"step": where})
        header = Group(*_parts(body["group"], f"{where}.chord.group", depth))
        return Chord(header, from_json(body["then"], f"{where}.chord.then", depth + 1))
    parts = _parts(data[kind], f"{where}.{kind}", depth)
    return Group(*parts) if kind == "group" else Chain(*parts)


def _parts(items: Any, where: str, depth: int) -> list[Node]:
    if not isinstance(items, list):
        raise InvalidWorkflow(f"{where}: expected a list", {"step": where})
    return [from_json(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(items)]


def _signature_from_json(data: Mapping[str, Any], where: str) -> Signature:
    task, args, kwargs = data["task"], data.get("args", []), data.get("kwargs", {})
    queue, priority = data.get("queue"), data.get("priority")
    if not isinstance(task, str):
        raise InvalidWorkflow(f"{where}.task: expected a task name", {"step": where})
    if not isinstance(args, list):
        raise InvalidWorkflow(f"{where}.args: expected a list", {"step": where})
    if not isinstance(kwargs, Mapping):
        raise InvalidWorkflow(f"{where}.kwargs: expected an object", {"step": where})
    if queue is not None and not isinstance(queue, str):
        raise InvalidWorkflow(f"{where}.queue: expected a queue name", {"step": where})
    if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int)):
        raise InvalidWorkflow(f"{where}.priority: expected an integer", {"step": where})
    return Signature(task, tuple(args), dict(kwargs), queue, priority)
