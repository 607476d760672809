"""The catalog: every django.tasks task Conveyor can run, found in each app's tasks.py.

Only tasks in the catalog can be submitted over HTTP, and a worker only runs
messages whose actor is in its catalog (others are dead-lettered as unknown).
"""

import importlib
import inspect
import json
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import dramatiq
import pydantic
from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, SuspiciousOperation
from django.tasks import Task, TaskContext, task_backends
from django.utils.json import normalize_json
from django.utils.module_loading import module_has_submodule

from conveyor import backend, runtime
from conveyor.errors import InvalidArguments, TaskRejected, UnknownTask

_catalog: dict[str, "CatalogEntry"] = {}
# The values of a task's `http` option that let a token run it over HTTP; "none" lets none.
HTTP_SCOPES = ("write", "admin")
HTTP_CHOICES = (*HTTP_SCOPES, "none")


# Stands for the value a workflow step receives from the step before it.
_INJECTED = object()


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False


@dataclass
class CatalogEntry:
    task: Task
    _adapters: dict = field(default_factory=dict, repr=False)

    @property
    def path(self) -> str:
        return self.task.module_path

    @cached_property
    def signature(self) -> inspect.Signature:
        sig = inspect.signature(self.task.func)
        params = list(sig.parameters.values())
        if self.task.takes_context:
            params = params[1:]  # the context is ours to pass, not the caller's
        return sig.replace(parameters=params)

    @cached_property
    def hints(self) -> dict[str, Any]:
        try:
            return typing.get_type_hints(self.task.func)
        except Exception:
            return {}

    @property
    def max_retries(self) -> int:
        value = getattr(self.task, "max_retries", None)
        return settings.CONVEYOR_MAX_RETRIES if value is None else value

    @property
    def http(self) -> str:
        """The scope a token needs to run it over HTTP ("write" or "admin"), or "none"."""
        value = getattr(self.task, "http", None)
        return settings.CONVEYOR_TASK_HTTP_DEFAULT if value is None else value

    def runnable_with(self, scopes_held: Callable[[str], bool]) -> bool:
        """Whether a token holding the scopes `scopes_held` says it holds may run it over HTTP."""
        return self.http in HTTP_SCOPES and scopes_held(self.http)

    @property
    def throws(self) -> tuple[type[BaseException], ...]:
        """Exceptions that fail the task at once: the task's own `throws`, and those retrying never fixes."""
        return (TaskRejected, SuspiciousOperation, *getattr(self.task, "throws", ()))

    @property
    def time_limit(self) -> float:
        """Seconds."""
        value = getattr(self.task, "time_limit", None)
        return settings.CONVEYOR_TIME_LIMIT_SECONDS if value is None else value

    def _adapter(self, annotation: Any) -> pydantic.TypeAdapter[Any]:
        key = repr(annotation)
        if key not in self._adapters:
            self._adapters[key] = pydantic.TypeAdapter(annotation)
        return self._adapters[key]

    def json_schema(self, annotation: Any) -> dict[str, Any]:
        """The JSON schema of values `validate` accepts for this annotation (OpenAPI uses it)."""
        return self._adapter(annotation).json_schema(mode="validation")

    def validate(self, args: Sequence[Any], kwargs: Mapping[str, Any], *, injected: bool = False) -> None:
        """Raise InvalidArguments unless args/kwargs bind to the signature with the right JSON types.

        injected: a workflow step that will receive the previous step's value as its first
        argument; that argument is left free (and its type is not checked: it is not known yet).
        """
        try:
            json.dumps([args, kwargs])
        except (TypeError, ValueError) as exc:
            raise InvalidArguments(f"arguments must be JSON: {exc}") from None
        if _has_nul([args, kwargs]):
            # PostgreSQL's jsonb cannot store U+0000; refused here, not as a database error.
            raise InvalidArguments("arguments cannot contain the character U+0000 (\\u0000)")
        try:
            bound = self.signature.bind(*([_INJECTED] if injected else []), *args, **kwargs)
        except TypeError as exc:
            given = " (after the value it receives from the step before it)" if injected else ""
            raise InvalidArguments(f"{self.path}{self.signature}: {exc}{given}") from None
        problems = []
        for name, value in bound.arguments.items():
            annotation = self.hints.get(name)
            if annotation is None or annotation is inspect.Parameter.empty:
                continue
            kind = self.signature.parameters[name].kind
            if kind is inspect.Parameter.VAR_POSITIONAL:
                items = list(enumerate(value))
            elif kind is inspect.Parameter.VAR_KEYWORD:
                items = list(value.items())
            else:
                items = [(None, value)]
            for sub, item in items:
                if item is _INJECTED:
                    continue
                try:
                    # strict: "4" is not an int; the task gets exactly what was sent.
                    self._adapter(annotation).validate_python(item, strict=True)
                except pydantic.ValidationError as exc:
                    where = name if sub is None else f"{name}[{sub!r}]"
                    expected = getattr(annotation, "__name__", repr(annotation))
                    problems.append({"argument": where, "expected": expected, "error": exc.errors()[0]["msg"]})
        if problems:
            summary = "; ".join(f"{p['argument']}: {p['error']}" for p in problems)
            raise InvalidArguments(f"wrong argument types for {self.path}: {summary}", problems)

    def describe(self) -> dict[str, Any]:
        params = []
        for p in self.signature.parameters.values():
            annotation = self.hints.get(p.name, p.annotation)
            entry = {
                "name": p.name,
                "kind": p.kind.name.lower(),
                "required": p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD),
                "type": None
                if annotation is inspect.Parameter.empty
                else getattr(annotation, "__name__", str(annotation)),
            }
            if p.default is not inspect.Parameter.empty:
                try:
                    entry["default"] = normalize_json(p.default)
                except TypeError:
                    entry["default"] = repr(p.default)
            params.append(entry)
        return {
            "name": self.path,
            "description": inspect.getdoc(self.task.func) or "",
            "queue": self.task.queue_name,
            "priority": self.task.priority,
            "max_retries": self.max_retries,
            "http": self.http,
            "time_limit_seconds": self.time_limit,
            "parameters": params,
        }


def _is_conveyor_task(obj: object) -> bool:
    if not isinstance(obj, Task):
        return False
    try:
        return isinstance(task_backends[obj.backend], backend.ConveyorBackend)
    except Exception:
        return False


def autodiscover(module_names: Sequence[str] | None = None) -> None:
    """Import `<app>.tasks` for every installed app and catalog the tasks found."""
    module_names = module_names or getattr(settings, "DRAMATIQ_AUTODISCOVER_MODULES", ["tasks"])
    for app_config in apps.get_app_configs():
        for module_name in module_names:
            if module_has_submodule(app_config.module, module_name):
                module = importlib.import_module(f"{app_config.name}.{module_name}")
                for obj in vars(module).values():
                    if _is_conveyor_task(obj):
                        entry = CatalogEntry(obj)
                        if entry.http not in HTTP_CHOICES:
                            raise ImproperlyConfigured(
                                f"{entry.path}: http={entry.http!r}; use one of {', '.join(HTTP_CHOICES)}"
                            )
                        _catalog[obj.module_path] = entry
    declare_actors(dramatiq.get_broker())


def entries() -> list[CatalogEntry]:
    return sorted(_catalog.values(), key=lambda e: e.path)


def exists(path: str) -> bool:
    return path in _catalog


def get(path: str) -> CatalogEntry:
    try:
        return _catalog[path]
    except KeyError:
        raise UnknownTask(f"unknown task {path!r}; GET /api/v1/catalog lists the tasks") from None


def _actor_function(entry: CatalogEntry) -> Callable[..., Any]:
    task = entry.task

    def run(*args: Any, **kwargs: Any) -> Any:
        # The return value is encoded by the worker's Lifecycle, which fails the task with a
        # clear error (and no pointless retries) when it cannot be stored.
        if task.takes_context:
            return task.call(TaskContext(task_result=runtime.current_task_result()), *args, **kwargs)
        return task.call(*args, **kwargs)

    run.__name__ = task.name
    run.__qualname__ = task.name
    run.__module__ = task.func.__module__
    return run


def declare_actors(broker: dramatiq.Broker) -> None:
    """Declare one Dramatiq actor per catalog task (and every configured queue) on broker."""
    for queue in settings.CONVEYOR_QUEUES:
        broker.declare_queue(queue)
    for entry in _catalog.values():
        if entry.path in broker.actors:
            continue
        dramatiq.actor(
            _actor_function(entry),
            actor_name=entry.path,
            queue_name=entry.task.queue_name,
            broker=broker,
            max_retries=entry.max_retries,
            throws=entry.throws,
            time_limit=int(entry.time_limit * 1000),
            min_backoff=settings.CONVEYOR_MIN_BACKOFF_MS,
            max_backoff=settings.CONVEYOR_MAX_BACKOFF_MS,
        )
