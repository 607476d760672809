"""Counts that stay cheap on millions of rows: exact up to a bound, else the planner's estimate.

`COUNT(*)` over a large table reads every row. A count is exact while it is at most
EXACT_UP_TO (a LIMITed subquery reads no more than that), and above it the planner's
row estimate from `EXPLAIN` (PostgreSQL statistics) is shown, labelled as such.
"""

import json
from dataclasses import dataclass

from django.db import connection
from django.db.models import QuerySet

EXACT_UP_TO = 10_000


@dataclass(frozen=True)
class Count:
    value: int
    exact: bool

    def __str__(self) -> str:
        if self.exact:
            return f"{self.value:,}"
        return f"≈ {_short(self.value)}"


def _short(value: int) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if value >= 1_000:
        return f"{value / 1_000:.0f}k"
    return str(value)


def bounded(queryset: QuerySet, exact_up_to: int | None = None) -> Count:
    """How many rows match: exact if at most `exact_up_to` (EXACT_UP_TO), else an estimate (never below the bound)."""
    exact_up_to = EXACT_UP_TO if exact_up_to is None else exact_up_to
    found = queryset.order_by()[: exact_up_to + 1].count()
    if found <= exact_up_to:
        return Count(found, True)
    if connection.vendor != "postgresql":
        # SQLite (a first local run) has no planner statistics to ask, nor millions of rows.
        return Count(queryset.count(), True)
    return Count(max(estimate(queryset), exact_up_to + 1), False)


def estimate(queryset: QuerySet) -> int:
    """The planner's estimate of the rows a query returns (0 where the database gives none)."""
    if connection.vendor != "postgresql":
        return 0
    sql, params = queryset.order_by().values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])
