"""The request line's parameters: undeclared query parameters and U+0000 are refused (400).

A typo such as `?stauts=FAILED` would otherwise answer the whole unfiltered list as if
it were the filtered one. The declared names come from the OpenAPI schema the API
serves, so what the schema allows and what the server accepts cannot drift apart.

PostgreSQL's text cannot hold U+0000: a `%00` in a filter or a path segment used in a
lookup would be a database error (a 500). It is refused for every parameter here, and
`describe` states it in the schema on every string parameter.
"""

import re
from typing import Any

from django.http import HttpRequest

from conveyor.errors import InvalidRequest
from services.web.task_schemas import NO_NUL

_ROUTE_PARAMETER = re.compile(r"<(?:\w+:)?(\w+)>")


def declared_query_parameters(openapi: dict[str, Any]) -> dict[tuple[str, str], frozenset[str]]:
    """{(path, method): query parameter names} of every operation in the schema."""
    out = {}
    for path, operations in openapi.get("paths", {}).items():
        for method, operation in operations.items():
            names = {p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"}
            out[(path, method.upper())] = frozenset(names)
    return out


def _strings(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The string schemas a parameter's schema may take (itself, or its anyOf branches)."""
    branches = schema.get("anyOf", [schema])
    return [s for s in branches if s.get("type") == "string"]


def describe(openapi: dict[str, Any]) -> dict[str, Any]:
    """State on every string parameter (path, query, header) that U+0000 is refused."""
    for operations in openapi.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                for schema in _strings(parameter.get("schema", {})):
                    if "pattern" not in schema and "enum" not in schema and "format" not in schema:
                        schema["pattern"] = NO_NUL
    return openapi


def check(request: HttpRequest, declared: dict[tuple[str, str], frozenset[str]]) -> None:
    """Raise InvalidRequest for a query parameter the operation does not declare, or a NUL."""
    match = request.resolver_match
    if match is None:
        return
    for name, value in [*match.kwargs.items(), *request.GET.lists()]:
        values = value if isinstance(value, list) else [value]
        if any("\x00" in str(v) for v in values):
            raise InvalidRequest(f"parameter {name!r} contains U+0000, which is not allowed", {"parameter": name})
    if not request.GET:
        return
    path = "/" + _ROUTE_PARAMETER.sub(r"{\1}", match.route)
    allowed = declared.get((path, request.method or "GET"))
    if allowed is None:
        return
    unknown = sorted(set(request.GET) - allowed)
    if unknown:
        takes = ", ".join(sorted(allowed)) or "none"
        raise InvalidRequest(
            f"unknown query parameter(s): {', '.join(repr(u) for u in unknown)}; this operation takes: {takes}",
            {"unknown": unknown, "allowed": sorted(allowed)},
        )
