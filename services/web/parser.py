"""The API's JSON body parser: strict JSON, so a body that is not JSON is a clear 400."""

import json
import math
from typing import Any

from django.http import HttpRequest
from ninja.parser import Parser

from conveyor.errors import MalformedBody


def _refuse_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity; they are not JSON, and PostgreSQL's jsonb
    # refuses them, so a body carrying one would fail at the database instead.
    raise MalformedBody(f"request body is not valid JSON: {name} is not a JSON number")


# Integers a double holds exactly (I-JSON's interoperable range, RFC 7493).
EXACT_INTEGER = 2**53


def _number(text: str) -> float | int:
    # JSON has one kind of number: 3.0 is the integer 3 (JSON Schema agrees), so a
    # parameter or field declared as an integer accepts it, as the schema says it does.
    # Only within the exact range: 1e308 stays a float, and arithmetic on it stays a
    # float's (it overflows to infinity rather than growing into a 309-digit integer).
    value = float(text)
    if math.isinf(value):  # 1e400: valid JSON text, but no double (and no jsonb) holds it
        raise MalformedBody(f"request body is not valid JSON: {text} is out of range")
    return int(value) if value.is_integer() and abs(value) <= EXACT_INTEGER else value


class StrictJSONParser(Parser):
    def parse_body(self, request: HttpRequest) -> Any:
        try:
            return json.loads(request.body, parse_constant=_refuse_constant, parse_float=_number)
        except MalformedBody:
            raise
        except RecursionError:  # valid JSON, nested deeper than Python's parser goes
            raise MalformedBody("request body is not valid JSON: nested too deeply") from None
        except ValueError:
            raise MalformedBody("request body is not valid JSON") from None
