"""Turns failures that happen outside a view into JSON errors, never a 500 page."""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, InterfaceError, OperationalError

from services.web.errors import database_unavailable, error_response


def _too_large():
    return error_response(413, "body_too_large", f"request body exceeds {settings.CONVEYOR_MAX_BODY_BYTES} bytes")


class JSONErrorMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        # Refuse an oversized body before anything reads it (uploads have their own limit).
        limit = settings.CONVEYOR_MAX_BODY_BYTES
        if request.content_type == "multipart/form-data":
            limit = settings.CONVEYOR_MAX_UPLOAD_BYTES
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return error_response(400, "bad_request", "invalid Content-Length header")
        if length > limit:
            return _too_large()
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, RequestDataTooBig):
            return _too_large()
        if isinstance(exception, (OperationalError, InterfaceError)) or (
            isinstance(exception, DatabaseError) and "connection" in str(exception).lower()
        ):
            return database_unavailable()
        return None
