"""Bearer-token authentication, scope checks, and which tasks a token may see."""

from django.db.models import QuerySet
from django.http import HttpRequest
from ninja.security import HttpBearer

from conveyor import tokens
from conveyor.catalog import CatalogEntry
from conveyor.core.models import ApiToken
from conveyor.errors import Forbidden


class BearerToken(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> ApiToken | None:
        api_token = tokens.lookup(token)
        if api_token is not None:
            request.api_token = api_token
        return api_token


def require(request: HttpRequest, scope: str) -> None:
    """Raise Forbidden (403) unless the request's token has `scope` (admin > write > read)."""
    if not request.api_token.has_scope(scope):
        raise Forbidden(f"this token lacks the {scope!r} scope")


def may_run(request: HttpRequest, entry: CatalogEntry) -> bool:
    """Whether the request's token may run this catalog task over HTTP (the task's `http` option)."""
    return entry.runnable_with(request.api_token.has_scope)


def require_runnable(request: HttpRequest, entry: CatalogEntry) -> None:
    """Raise Forbidden (403) unless the request's token may run this task over HTTP."""
    if not may_run(request, entry):
        if entry.http == "admin":
            raise Forbidden(f"{entry.path} can be run over HTTP by admin tokens only")
        raise Forbidden(f"{entry.path} cannot be run over HTTP; it runs from Django code and schedules")


def visible_tasks(request: HttpRequest, queryset: QuerySet) -> QuerySet:
    """A token sees only the tasks it submitted, unless it is admin-scoped."""
    if request.api_token.is_admin:
        return queryset
    return queryset.filter(owner=request.api_token)
