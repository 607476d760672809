"""The API's JSON body parser: strict JSON, so a body that is not JSON is a clear 400."""

import json
from typing import Any

from django.http import HttpRequest
from ninja.parser import Parser

from conveyor.errors import MalformedBody


def _refuse_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity; they are not JSON, and PostgreSQL's jsonb
    # refuses them, so a body carrying one would fail at the database instead.
    raise MalformedBody(f"request body is not valid JSON: {name} is not a JSON number")


class StrictJSONParser(Parser):
    def parse_body(self, request: HttpRequest) -> Any:
        try:
            return json.loads(request.body, parse_constant=_refuse_constant)
        except MalformedBody:
            raise
        except ValueError:
            raise MalformedBody("request body is not valid JSON") from None
