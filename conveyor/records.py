"""Lifecycle writes on task rows, one statement each (the worker's hot path).

Each is a single conditional UPDATE, so a state change is atomic without an explicit
transaction or a SELECT ... FOR UPDATE round trip. JSON list appends are done by the
database (PostgreSQL `||`, SQLite `json_insert`), and so are the timestamps: the
statements bind only the values that vary (measured: parameter quoting was a visible
share of a worker's CPU per task).
"""

import functools
import json
import uuid
from datetime import UTC

from django.db import connection
from django.utils.dateparse import parse_datetime

from conveyor.core.models import TaskRecord, TaskStatus

TABLE = TaskRecord._meta.db_table
READY, RUNNING = TaskStatus.READY.value, TaskStatus.RUNNING.value


def _sql(postgresql, sqlite):
    return postgresql if connection.vendor == "postgresql" else sqlite


def _now():
    # Django stores SQLite datetimes as naive UTC text "YYYY-MM-DD HH:MM:SS.ffffff".
    return _sql("now()", "strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now')")


def _append(column):
    """SQL that appends one JSON value (given as a parameter) to a JSON list column."""
    return _sql(f"{column} || jsonb_build_array(%s::jsonb)", f"json_insert({column}, '$[#]', json(%s))")


def _json_param():
    return _sql("%s::jsonb", "%s")


def mark_running(task_id, worker_id, redelivered=True):
    """READY -> RUNNING, one more attempt. Returns (attempts, started_at, last_attempted_at, worker_ids) or None.

    A RUNNING task is taken again only from a redelivered message: a worker killed
    mid-task leaves its task RUNNING and RabbitMQ redelivers it. A fresh message for
    a RUNNING task is a duplicate publish while another worker runs it: skipped.
    """
    with connection.cursor() as cursor:
        cursor.execute(_running_sql(connection.vendor, redelivered), [json.dumps(worker_id), _id(task_id)])
        row = cursor.fetchone()
    if row is None:
        return None
    attempts, started_at, last_attempted_at, worker_ids = row
    return attempts, _datetime(started_at), _datetime(last_attempted_at), _loads(worker_ids)


# The statements are built once per database vendor: string formatting on every task
# showed up in the worker's profile.
@functools.cache
def _running_sql(vendor, redelivered):
    allowed = f"('{READY}', '{RUNNING}')" if redelivered else f"('{READY}')"
    return (
        f"UPDATE {TABLE} SET status = '{RUNNING}', attempts = attempts + 1, "
        f"started_at = COALESCE(started_at, {_now()}), last_attempted_at = {_now()}, "
        f"worker_ids = {_append('worker_ids')} "
        f"WHERE id = %s AND status IN {allowed} RETURNING attempts, started_at, last_attempted_at, worker_ids"
    )


@functools.cache
def _successful_sql(vendor):
    return (
        f"UPDATE {TABLE} SET status = '{TaskStatus.SUCCESSFUL.value}', return_value = {_json_param()}, "
        f"finished_at = {_now()} WHERE id = %s AND status = '{RUNNING}' RETURNING finished_at"
    )


def status_of(task_id):
    return TaskRecord.objects.filter(id=task_id).values_list("status", flat=True).first()


def mark_successful(task_id, return_value):
    """RUNNING -> SUCCESSFUL with its return value. Returns finished_at."""
    return _returning(_successful_sql(connection.vendor), [json.dumps(return_value), _id(task_id)])


def mark_failed_attempt(task_id, error, final, failure_reason=""):
    """Append the error; FAILED if final, else back to READY for the retry. Returns finished_at."""
    status = TaskStatus.FAILED.value if final else READY
    finished = _now() if final else "NULL"
    sql = (
        f"UPDATE {TABLE} SET status = '{status}', errors = {_append('errors')}, finished_at = {finished}, "
        f"failure_reason = %s WHERE id = %s AND status = '{RUNNING}' RETURNING finished_at"
    )
    return _returning(sql, [json.dumps(error), failure_reason, _id(task_id)])


def _returning(sql, params):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return _datetime(row[0]) if row else None


def _id(task_id):
    # PostgreSQL stores a uuid; SQLite stores Django's 32-hex-digit text form.
    value = uuid.UUID(str(task_id))
    return value if connection.vendor == "postgresql" else value.hex


def _loads(value):
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def _datetime(value):
    """Aware UTC: SQLite hands back naive UTC (text or datetime), PostgreSQL aware values."""
    if isinstance(value, str):
        value = parse_datetime(value)
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value
