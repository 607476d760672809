"""Schemathesis against the in-process API: every operation, all checks, a fixed seed.

What the OpenAPI schema allows, the server accepts; what it refuses, the server answers
with a 4xx JSON error; no request gets a 5xx; every response matches the schema.
"""

import os

import django
import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

django.setup()

from config.wsgi import application  # noqa: E402

EXAMPLES = int(os.environ.get("CONVEYOR_SCHEMATHESIS_EXAMPLES", "40"))
CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": 20261202,
        # The token is the test's own header (below): generating requests without it, or
        # with another, would test the header's absence, which test_task_access.py covers.
        "generation": {"max-examples": EXAMPLES, "with-security-parameters": False},
        # Stateful links need operations that share ids through responses; ours share none.
        "phases": {"stateful": {"enabled": False}},
        "operations": [
            {
                # Schema-valid but refused, on purpose, for what JSON Schema cannot state: a
                # cron range must go low to high ("5-3" is refused), a schedule's task and
                # arguments are checked against the catalog together, and a PATCH is checked
                # against the stored schedule it changes; an upload must be an image the
                # server can decode; a workflow step after another receives that step's value
                # as its first argument, so which arguments fit depends on the step's place
                # in the tree. Every other check runs on these operations too.
                "include-operation-id": [
                    "create_schedule",
                    "update_schedule",
                    "upload_profile_picture",
                    "submit_workflow",
                ],
                "checks": {"positive_data_acceptance": {"enabled": False}},
            },
            {
                # Recursive bodies (chains of groups of chords): the coverage phase's boundary
                # cases multiply with every level of nesting (thousands of requests, minutes);
                # the fuzzing phase still runs every check on generated trees. Schemathesis's
                # own generator can recurse past Python's limit on deep trees (a RecursionError
                # in its strategy builder, seen at a few hundred examples): at most 40 here.
                "include-operation-id": ["submit_workflow"],
                "phases": {"coverage": {"enabled": False}},
                "generation": {"max-examples": min(EXAMPLES, 40)},
            },
        ],
    }
)
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", application, config=CONFIG)


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    # Django's handler closes the database connection after each request; inside a test's
    # transaction that would end the test's transaction (Django's test client does the same).
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def admin_header(make_token):
    _, secret = make_token(("admin",))
    return {"Authorization": f"Bearer {secret}"}


@pytest.mark.django_db
@schema.parametrize()
# The token fixture is the same for every example, on purpose: one admin token.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_the_api_keeps_its_schema(case, admin_header):
    # Given any request the schema allows (or, in negative mode, one it refuses)
    # When it is sent with an admin token
    # Then no check fails: no 5xx, valid input accepted, invalid refused, responses as documented
    case.call_and_validate(headers=admin_header)
