"""The OpenAPI schema of a task submission accepts exactly the arguments the server accepts."""

from types import SimpleNamespace

import jsonschema
import pytest

from conveyor.catalog import CatalogEntry
from conveyor.errors import InvalidArguments
from services.web.task_schemas import JSON_VALUE, variants


def every_kind(a: int, /, b: str, c: float = 1.0, *rest: int, d: bool, e: int = 0, **more: str):
    """One parameter of each kind Python has."""


def plain(x: int | float, y: list[str] | None = None):
    """Positional-or-keyword parameters only, as most tasks have."""


def untyped(value, options: dict[str, int] | None = None):
    """No annotation: any JSON value."""


def entry_for(func):
    return CatalogEntry(task=SimpleNamespace(func=func, takes_context=False, module_path=f"tests.{func.__name__}"))


CASES = [
    (every_kind, [1, "x"], {"d": True}),
    (every_kind, [1], {"b": "x", "d": True}),
    (every_kind, [1, "x", 2.5, 3, 4], {"d": False, "z": "s"}),
    (every_kind, [1, "x", 2], {"d": True, "e": 5}),
    (every_kind, [], {"a": 1, "b": "x", "d": True}),  # a is positional-only
    (every_kind, [1, "x"], {"b": "y", "d": True}),  # b given twice
    (every_kind, [1, "x"], {}),  # d is required
    (every_kind, [1, "x", 1.5, "no"], {"d": True}),  # *rest takes ints
    (every_kind, [1, "x"], {"d": True, "z": 3}),  # **more takes strings
    (every_kind, [True, "x"], {"d": True}),  # a bool is not an int
    (plain, [1], {}),
    (plain, [1.5, ["a"]], {}),
    (plain, [], {"x": 2, "y": None}),
    (plain, [1], {"y": ["a", "b"]}),
    (plain, [], {}),  # x is required
    (plain, [1, 2, 3], {}),  # too many
    (plain, [1], {"x": 1}),  # x twice
    (plain, ["1"], {}),  # "1" is not a number
    (plain, [1], {"z": 1}),  # no such parameter
    (plain, [1], {"y": ["a\x00b"]}),  # U+0000 cannot be stored
    (untyped, [{"a": [1, "b", None, True, 2.5]}], {}),
    (untyped, [[{"a\x00": 1}]], {}),  # nor in a key
    (untyped, ["x"], {"options": {"k": 1}}),
    (untyped, ["x"], {"options": {"k\x00": 1}}),
    (untyped, ["x"], {"options": {"k": "1"}}),
]


@pytest.mark.parametrize("func, args, kwargs", CASES)
def test_the_schema_accepts_exactly_what_the_server_accepts(func, args, kwargs):
    # Given a task's submission schema, as the OpenAPI document states it
    entry = entry_for(func)
    schema = {**variants({}, [entry], "TaskIn"), "components": {"schemas": {"JsonValue": JSON_VALUE}}}
    submission = {"task": entry.path, "args": args, "kwargs": kwargs}
    # When the arguments are checked by the schema and by the server
    schema_says = jsonschema.Draft202012Validator(schema).is_valid(submission)
    try:
        entry.validate(args, kwargs)
        server_says = True
    except InvalidArguments:
        server_says = False
    # Then they agree
    assert schema_says == server_says
