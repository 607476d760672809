"""What a task submission may contain, stated in the OpenAPI schema task by task.

The server checks a submission against the catalog: the task must be one that runs over
HTTP (its `http` option), the queue a configured one, and `args`/`kwargs` must bind to
the task's signature with the declared JSON types (conveyor.catalog.CatalogEntry.validate,
pydantic in strict mode). A schema saying only "task: string, args: array" would let a
schema-driven client build requests the server refuses. This states the same rules:
one variant per task and per way of splitting its parameters between `args` (by
position) and `kwargs` (by name), as Python binds them, with each parameter's JSON
schema from the same pydantic type the server validates with.

The schema describes this deployment's catalog (it is built when the schema is served).
"""

import inspect
from collections.abc import Iterable
from typing import Any

from django.conf import settings

from conveyor import catalog
from conveyor.catalog import CatalogEntry

# Strings are stored in PostgreSQL's jsonb, which cannot hold U+0000: refused with a 400.
NO_NUL = "^[^\\u0000]*$"
# Any JSON value the server stores: a parameter without a type annotation takes one.
JSON_VALUE_REF = "#/components/schemas/JsonValue"
JSON_VALUE = {
    "description": "Any JSON value (no string or key may contain U+0000)",
    "anyOf": [
        {"type": ["null", "boolean", "number"]},
        {"type": "string", "pattern": NO_NUL},
        {"type": "array", "items": {"$ref": JSON_VALUE_REF}},
        {"type": "object", "propertyNames": {"pattern": NO_NUL}, "additionalProperties": {"$ref": JSON_VALUE_REF}},
    ],
}


def _no_nul(schema: Any) -> Any:
    """The schema with every string constrained to have no U+0000, at any depth."""
    if isinstance(schema, list):
        return [_no_nul(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _no_nul(v) for k, v in schema.items()}
    if out.get("type") == "string" or (isinstance(out.get("type"), list) and "string" in out["type"]):
        out.setdefault("pattern", NO_NUL)
    if out.get("type") == "object":
        out.setdefault("propertyNames", {"pattern": NO_NUL})
    if out == {}:  # any value (an annotation such as Any)
        return {"$ref": JSON_VALUE_REF}
    return out


def parameter_schema(entry: CatalogEntry, name: str) -> dict[str, Any]:
    """The JSON schema of one parameter's value: its annotation's, or any JSON value."""
    annotation = entry.hints.get(name, inspect.Parameter.empty)
    if annotation is inspect.Parameter.empty:
        return {"$ref": JSON_VALUE_REF}
    schema = entry.json_schema(annotation)
    schema.pop("title", None)
    return _no_nul(schema)


def _object(properties: dict[str, Any], required: Iterable[str], rest: Any = False) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": rest}
    required = sorted(required)
    if required:
        schema["required"] = required
    return schema


def bindings(entry: CatalogEntry) -> list[tuple[dict[str, Any], dict[str, Any], bool, bool]]:
    """Every way to pass this task's arguments: (args schema, kwargs schema, args required, kwargs required)."""
    params = list(entry.signature.parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    keyword_only = [p for p in params if p.kind is p.KEYWORD_ONLY]
    var_positional = next((p for p in params if p.kind is p.VAR_POSITIONAL), None)
    var_keyword = next((p for p in params if p.kind is p.VAR_KEYWORD), None)
    out = []
    for k in range(len(positional) + 1):
        by_position, rest = positional[:k], positional[k:]
        if any(p.kind is p.POSITIONAL_ONLY and p.default is p.empty for p in rest):
            continue  # a required positional-only parameter cannot be named
        args: dict[str, Any] = {"type": "array", "minItems": k}
        if by_position:
            args["prefixItems"] = [parameter_schema(entry, p.name) for p in by_position]
        if var_positional is not None and k == len(positional):
            args["items"] = parameter_schema(entry, var_positional.name)
        else:
            args["maxItems"] = k
            args["items"] = False
        named = [p for p in rest if p.kind is p.POSITIONAL_OR_KEYWORD] + keyword_only
        required = [p.name for p in named if p.default is p.empty]
        extra: Any = False
        if var_keyword is not None:
            extra = parameter_schema(entry, var_keyword.name)
        kwargs = _object({p.name: parameter_schema(entry, p.name) for p in named}, required, extra)
        if var_keyword is not None:
            # **kwargs takes any other name, but not one already given by position.
            taken = [p.name for p in positional if p not in named]
            if taken:
                kwargs["propertyNames"] = {"not": {"enum": taken}}
        out.append((args, kwargs, k > 0, bool(required)))
    return out


def http_tasks() -> list[CatalogEntry]:
    """The tasks some token can run over HTTP, by name."""
    return sorted((e for e in catalog.entries() if e.http != "none"), key=lambda e: e.path)


def variants(common: dict[str, Any], entries: Iterable[CatalogEntry], title: str) -> dict[str, Any]:
    """One object schema per (task, binding); `common` holds the other properties, all optional."""
    out = []
    for entry in entries:
        for args, kwargs, args_required, kwargs_required in bindings(entry):
            required = ["task"] + ["args"] * args_required + ["kwargs"] * kwargs_required
            properties = {"task": {"const": entry.path, "type": "string"}, "args": args, "kwargs": kwargs, **common}
            out.append(
                {"title": f"{entry.path}{entry.signature}", **_object(properties, required)},
            )
    return {"title": title, "oneOf": out}


def queue_schema() -> dict[str, Any]:
    return {"anyOf": [{"type": "string", "enum": list(settings.CONVEYOR_QUEUES)}, {"type": "null"}]}


def install(openapi: dict[str, Any]) -> dict[str, Any]:
    """Replace the generic TaskIn component with the catalog's variants."""
    schemas = openapi.get("components", {}).get("schemas", {})
    generic = schemas.get("TaskIn")
    if generic is None:
        return openapi
    common = {k: v for k, v in generic["properties"].items() if k not in ("task", "args", "kwargs")}
    common["queue"] = {**queue_schema(), "description": common.get("queue", {}).get("description", "")}
    described = variants(common, http_tasks(), "TaskIn")
    described["description"] = (
        "A task of the catalog (GET /api/v1/catalog) with arguments that bind to its signature: "
        "by position in `args`, by name in `kwargs`, or both, as in Python."
    )
    schemas["TaskIn"] = described
    schemas["JsonValue"] = JSON_VALUE
    # A workflow's steps name tasks of the same catalog, on the configured queues. Their
    # arguments are not described task by task: a step after another receives that step's
    # value as its first argument, which depends on its place in the tree.
    names = [e.path for e in http_tasks()]
    for component in ("TaskNode", "TaskWorkflow"):
        if component in schemas:
            properties = schemas[component]["properties"]
            properties["task"] = {"type": "string", "enum": names, "description": "Catalog name"}
            properties["queue"] = queue_schema()
            for key in ("args", "kwargs"):
                properties[key] = _no_nul(properties[key])
    return openapi
