"""The HTTP API under /api/v1: one NinjaAPI, each app's router mounted by its dotted path.

Apps never import the API that mounts them (cookiecutter-django's config/api.py does the
same). OpenAPI schema at /api/v1/openapi.json, browsable docs at /api/v1/docs.
"""

from ninja import NinjaAPI

from services.web import errors, query
from services.web.auth import BearerToken
from services.web.parser import StrictJSONParser
from services.web.task_schemas import install as describe_tasks


class ConveyorAPI(NinjaAPI):
    def get_openapi_operation_id(self, operation) -> str:
        # The view's name alone: operation ids do not change when a module moves.
        return operation.view_func.__name__

    def get_openapi_schema(self, *, path_prefix=None, path_params=None):
        # Task submissions are described task by task from the catalog (services/web/task_schemas.py).
        openapi = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        return query.describe(describe_tasks(openapi))

    def create_temporal_response(self, request):
        # Called for every operation once the token is checked and before parameters are
        # read: the place to refuse query parameters the operation does not declare.
        declared = self.__dict__.get("_declared_query")
        if declared is None:
            declared = self.__dict__["_declared_query"] = query.declared_query_parameters(self.get_openapi_schema())
        query.check(request, declared)
        return super().create_temporal_response(request)


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
api.add_router("/workflows", "services.web.workflows_api.router")
api.add_router("/demo", "demo.api.router")
