"""The HTTP API under /api/v1: one NinjaAPI, each app's router mounted by its dotted path.

Apps never import the API that mounts them (cookiecutter-django's config/api.py does the
same). OpenAPI schema at /api/v1/openapi.json, browsable docs at /api/v1/docs.
"""

from ninja import NinjaAPI

from services.web import errors
from services.web.auth import BearerToken
from services.web.parser import StrictJSONParser


class ConveyorAPI(NinjaAPI):
    def get_openapi_operation_id(self, operation) -> str:
        # The view's name alone: operation ids do not change when a module moves.
        return operation.view_func.__name__


api = ConveyorAPI(
    title="Conveyor",
    version="1",
    description="Submit, inspect, cancel and retry background tasks. Every call needs "
    "`Authorization: Bearer <token>` (create one with `make token`).",
    auth=BearerToken(),
    parser=StrictJSONParser(),
    urls_namespace="api-v1",
)
errors.install(api)

api.add_router("/tasks", "services.web.tasks_api.router")
api.add_router("/catalog", "services.web.catalog_api.router")
api.add_router("/schedules", "services.web.schedules_api.router")
api.add_router("/demo", "demo.api.router")
