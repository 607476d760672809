"""Who may see and who may act: Django's auth, staff only, with Conveyor's model permissions.

- anonymous: redirected to the admin's login page, then back;
- staff with `conveyor.view_taskrecord`: reads every page;
- staff with `conveyor.change_taskrecord` too: sees and may use the action buttons.
Anyone else gets 403. Every action is a POST, so Django's CSRF middleware guards it.
"""

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

VIEW = "conveyor.view_taskrecord"
CHANGE = "conveyor.change_taskrecord"


def may_view(user) -> bool:
    return user.is_active and user.is_staff and user.has_perm(VIEW)


def may_act(user) -> bool:
    return may_view(user) and user.has_perm(CHANGE)


def _forbidden(request: HttpRequest, why: str) -> HttpResponse:
    return render(request, "dashboard/forbidden.html", {"why": why}, status=403)


def _has_nul(request: HttpRequest, kwargs: dict) -> bool:
    """U+0000 anywhere in the parameters: PostgreSQL's text cannot hold it, so no query may see it."""
    values = [v for data in (request.GET, request.POST) for key in data for v in (key, *data.getlist(key))]
    values += [v for v in kwargs.values() if isinstance(v, str)]
    return any("\x00" in value for value in values)


def _bad_request(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "dashboard/forbidden.html",
        {"title": "400 Bad Request", "why": "A parameter contains U+0000."},
        status=400,
    )


def _guard(view, allowed, why: str, method):
    """`view` for a logged-in user whom `allowed` admits, with no U+0000 in its parameters."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), reverse("admin:login"))
        if not allowed(request.user):
            return _forbidden(request, why)
        if _has_nul(request, kwargs):
            return _bad_request(request)
        return view(request, *args, **kwargs)

    return method(wrapped)


def viewer(view):
    """A page: staff with the view permission."""
    return _guard(view, may_view, "You need to be staff with the Conveyor task view permission.", require_GET)


def operator(view):
    """An action: a POST by staff with the change permission."""
    return _guard(view, may_act, "You need the Conveyor task change permission to do this.", require_POST)


def actor_name(request: HttpRequest) -> str:
    """How an action names who did it (kept in reasons and queue states)."""
    return f"{request.user.get_username()} (dashboard)"
