"""Bearer-token authentication and scope checks for the API."""

from ninja.security import HttpBearer

from conveyor import tokens


class ScopeError(Exception):
    pass


class BearerToken(HttpBearer):
    def authenticate(self, request, token):
        api_token = tokens.lookup(token)
        if api_token is not None:
            request.api_token = api_token
        return api_token


def require(request, scope):
    if not request.api_token.has_scope(scope):
        raise ScopeError(f"this token lacks the {scope!r} scope")


def visible_tasks(request, queryset):
    """A token sees only the tasks it submitted, unless it is admin-scoped."""
    if request.api_token.is_admin:
        return queryset
    return queryset.filter(owner=request.api_token)
