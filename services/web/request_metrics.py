"""Counts and times every HTTP request, and answers Prometheus' scrape of /metrics.

First in MIDDLEWARE so that it times everything below it, including answers that other
middleware give on their own (413 for an oversized body, 503 without a database).

It answers `GET /metrics` itself, before CommonMiddleware: Prometheus scrapes each web
replica by its IP address (DNS service discovery), and that Host header is not in
DJANGO_ALLOWED_HOSTS, so the normal route would answer 400 to every scrape.
"""

import time

from django.urls import Resolver404, resolve

from conveyor import metrics
from services.web import exposition

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "<unmatched>"


def _view_label(request):
    """The URL pattern, never the raw path: one series per route, not per task id."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        # Answered by a middleware before URL resolution (413, 503...).
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return UNMATCHED
    return match.route or match.view_name or UNMATCHED


class RequestMetricsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        if request.path_info == exposition.PATH and request.method in ("GET", "HEAD"):
            response = exposition.metrics_view(request)
            request.resolver_match = None
            view = exposition.VIEW_LABEL
        else:
            response = self.get_response(request)
            view = _view_label(request)
        method = request.method if request.method in METHODS else "other"
        metrics.HTTP_REQUESTS.labels(view=view, method=method, status=str(response.status_code)).inc()
        metrics.HTTP_REQUEST_DURATION.labels(view=view, method=method).observe(time.perf_counter() - started)
        return response
