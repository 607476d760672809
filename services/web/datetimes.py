"""Date-times the API accepts: RFC 3339 strings with an offset, exactly what its schema says.

pydantic's own datetime parsing also takes numbers (Unix time), date-only strings and
times without an offset; the schema says `format: date-time`, so a client reading it
could not know. A date-time that is valid with its offset but outside Python's range in
UTC (9999-12-31T23:59:59-14:00 is in the year 10000 in UTC) is clamped to the last (or
first) representable instant, which means "never" (or "now") for a `run_after`.
"""

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema

_RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$",
)
LATEST = datetime.max.replace(tzinfo=UTC)
EARLIEST = datetime.min.replace(tzinfo=UTC)


def parse(value: Any) -> datetime | None:
    """An aware datetime from an RFC 3339 string; ValueError (a 400) for anything else."""
    if value is None or isinstance(value, datetime):
        return value
    match = _RFC3339.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError("must be an RFC 3339 date-time with an offset, e.g. 2026-01-01T08:00:00Z")
    day, hour, minute, second, fraction, offset = match.groups()
    leap = second == "60"  # RFC 3339 allows a leap second; Python has none: the next instant
    fraction = (fraction or "")[:7].ljust(7, "0") if fraction else ""
    text = f"{day}T{hour}:{minute}:{'59' if leap else second}{fraction}{'+00:00' if offset in 'Zz' else offset}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("is not a real date and time") from None
    try:
        utc = parsed.astimezone(UTC)
        return utc + timedelta(seconds=1) if leap else utc
    except OverflowError:
        return LATEST if parsed.year > 1 else EARLIEST


AwareDateTime = Annotated[
    datetime,
    BeforeValidator(parse),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
