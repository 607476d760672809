"""One JSON error shape for every 4xx/5xx the web service answers:

    {"error": {"code": "invalid_arguments", "message": "...", "details": [...]}}

The status and code come from the error itself (conveyor.errors); the handlers here
only translate what Django and django-ninja raise into those errors, by type.
"""

import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.views import defaults
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

from conveyor.errors import (
    BodyTooLarge,
    ClientError,
    ConveyorError,
    DatabaseUnavailable,
    InvalidRequest,
    MalformedUpload,
    NotFound,
    PathNotFound,
    Unauthorized,
)

logger = logging.getLogger(__name__)


def error_response(error: ConveyorError) -> JsonResponse:
    body = {"error": {"code": error.code, "message": error.message}}
    if error.details:
        body["error"]["details"] = error.details
    response = JsonResponse(body, status=error.status)
    for name, value in error.headers.items():
        response[name] = value
    return response


def as_conveyor_error(exc: BaseException) -> ConveyorError | None:
    """The ConveyorError standing for an exception Django or django-ninja raised, if any.

    Only connection-level database errors mean "unavailable"; any other DatabaseError is a
    fault of ours and stays a 500.
    """
    if isinstance(exc, ConveyorError):
        return exc
    if isinstance(exc, RequestDataTooBig):
        return too_large()
    if isinstance(exc, MultiPartParserError):
        return MalformedUpload(f"the multipart body cannot be parsed: {exc}")
    if isinstance(exc, OperationalError | InterfaceError):
        return DatabaseUnavailable()
    return None


def too_large(limit: int | None = None) -> BodyTooLarge:
    return BodyTooLarge(f"request body exceeds {limit or settings.CONVEYOR_MAX_BODY_BYTES} bytes")


def _validation_details(errors: list[dict]) -> list[dict]:
    details = []
    for err in errors:
        loc = [str(part) for part in err.get("loc", []) if part not in ("body", "payload")]
        if err.get("type") == "extra_forbidden":
            message = f"field {'.'.join(loc)!r} may not be set by a client"
        else:
            message = err.get("msg", "invalid")
        # An error about the body as a whole (a JSON list instead of an object) has no field.
        details.append({"field": ".".join(loc) or "body", "error": message})
    return details


def on_validation_error(request: HttpRequest, exc: ValidationError) -> JsonResponse:
    details = _validation_details(exc.errors)
    return error_response(InvalidRequest("; ".join(f"{d['field']}: {d['error']}" for d in details), details))


def on_authentication_error(request: HttpRequest, exc: AuthenticationError) -> JsonResponse:
    return error_response(Unauthorized())


def on_http_error(request: HttpRequest, exc: HttpError) -> JsonResponse:
    # django-ninja wraps whatever its body parser raised (services/web/parser.py raises
    # MalformedBody) in an HttpError(400); the original is its cause.
    cause = as_conveyor_error(exc.__cause__) if exc.__cause__ is not None else None
    if cause is not None:
        return error_response(cause)
    error = NotFound(str(exc)) if exc.status_code == 404 else ClientError(str(exc))
    error.status = exc.status_code
    return error_response(error)


def on_not_found(request: HttpRequest, exc: Http404) -> JsonResponse:
    return error_response(PathNotFound(f"no such path: {request.path}"))


def on_exception(request: HttpRequest, exc: Exception) -> JsonResponse:
    """Anything else: a ConveyorError's own status, a database outage's 503, else a JSON 500."""
    error = as_conveyor_error(exc)
    if error is None:
        logger.exception("Unhandled error answering %s %s", request.method, request.path)
        error = ConveyorError("internal server error")
    return error_response(error)


def not_found_view(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Django's handler404: JSON under /api/ (a path no router has), Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return error_response(PathNotFound(f"no such path: {request.path}"))
    return defaults.page_not_found(request, exception)


def server_error_view(request: HttpRequest) -> HttpResponse:
    """Django's handler500: JSON under /api/, Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return error_response(ConveyorError("internal server error"))
    return defaults.server_error(request)


def install(api: NinjaAPI) -> None:
    """Register the handlers on a NinjaAPI (config/api.py)."""
    api.add_exception_handler(ValidationError, on_validation_error)
    api.add_exception_handler(AuthenticationError, on_authentication_error)
    api.add_exception_handler(HttpError, on_http_error)
    api.add_exception_handler(Http404, on_not_found)
    api.add_exception_handler(Exception, on_exception)
