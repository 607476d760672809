"""A bound on how long one dashboard query may run (PostgreSQL's statement_timeout)."""

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import OperationalError, connection, transaction


class TooSlow(Exception):
    """The query was stopped at its time bound."""


@contextmanager
def bounded(milliseconds: int) -> Iterator[None]:
    """Run the block's queries with a statement timeout; TooSlow when it fires (PostgreSQL only)."""
    if connection.vendor != "postgresql":
        yield
        return
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(f"SET LOCAL statement_timeout = {int(milliseconds)}")
            yield
    except OperationalError as exc:
        # psycopg's QueryCanceled (SQLSTATE 57014) arrives as Django's OperationalError.
        if getattr(getattr(exc, "__cause__", None), "sqlstate", None) == "57014":
            raise TooSlow() from exc
        raise
