"""What differs between PostgreSQL and SQLite in the raw SQL of conveyor.states and conveyor.outbox.

Raw SQL is used only on hot paths (the worker's lifecycle writes, the submission's
INSERTs), where the ORM's per-call work showed in profiles. Everything vendor-specific
about those statements is here, so each statement is written once.
"""

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from django.db import connection
from django.utils.dateparse import parse_datetime


def is_postgresql() -> bool:
    return connection.vendor == "postgresql"


def pick(postgresql: str, sqlite: str) -> str:
    return postgresql if is_postgresql() else sqlite


def now() -> str:
    """SQL for the current time in the column format Django uses.

    SQLite stores datetimes as naive UTC text "YYYY-MM-DD HH:MM:SS.ffffff".
    """
    return pick("now()", "strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now')")


def append_json(column: str) -> str:
    """SQL that appends one JSON value (given as a parameter) to a JSON list column."""
    return pick(f"{column} || jsonb_build_array(%s::jsonb)", f"json_insert({column}, '$[#]', json(%s))")


def append_bounded(column: str, value: str, *, limit: int, keep_first: int) -> str:
    """SQL: `column` (a JSON list) with the JSON `value` (an SQL expression) appended, never more
    than `limit` long: once full, the entry after the first `keep_first` goes (the first ones
    and the latest ones are kept). `value` appears once, so it may hold a parameter."""
    if is_postgresql():
        trimmed = f"(CASE WHEN jsonb_array_length({column}) >= {limit} THEN {column} - {keep_first} ELSE {column} END)"
        return f"{trimmed} || jsonb_build_array({value})"
    dropped = f"json_remove({column}, '$[{keep_first}]')"
    trimmed = f"(CASE WHEN json_array_length({column}) >= {limit} THEN {dropped} ELSE {column} END)"
    return f"json_insert({trimmed}, '$[#]', json({value}))"


def is_full(column: str, limit: int) -> str:
    """SQL: whether a JSON list column already holds `limit` entries."""
    return pick(f"jsonb_array_length({column}) >= {limit}", f"json_array_length({column}) >= {limit}")


def json_param() -> str:
    return pick("%s::jsonb", "%s")


def task_id(value: Any) -> Any:
    """A task id as the database stores it: a uuid on PostgreSQL, 32 hex digits on SQLite."""
    parsed = uuid.UUID(str(value))
    return parsed if is_postgresql() else parsed.hex


def when(value: datetime) -> Any:
    """A datetime parameter as the database stores it (naive UTC text on SQLite)."""
    return connection.ops.adapt_datetimefield_value(value)


def to_datetime(value: Any) -> datetime | None:
    """Aware UTC: SQLite hands back naive UTC (text or datetime), PostgreSQL aware values."""
    if isinstance(value, str):
        value = parse_datetime(value)
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def from_json(value: Any) -> Any:
    """A JSON column read by a raw query: text on SQLite, already decoded on PostgreSQL."""
    return json.loads(value) if isinstance(value, str | bytes) else value
