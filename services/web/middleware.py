"""Turns failures that happen outside an API view into JSON errors, never an HTML 500 page."""

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from conveyor.errors import ClientError
from services.web.errors import as_conveyor_error, error_response, too_large


class JSONErrorMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # Refuse an oversized body before anything reads it (uploads have their own limit).
        limit = settings.CONVEYOR_MAX_BODY_BYTES
        if request.content_type == "multipart/form-data":
            limit = settings.CONVEYOR_MAX_UPLOAD_BYTES
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return error_response(ClientError("invalid Content-Length header"))
        if length > limit:
            return error_response(too_large(limit))
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        error = as_conveyor_error(exception)
        return None if error is None else error_response(error)
