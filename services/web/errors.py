"""One JSON error shape for every 4xx/5xx the web service answers:

{"error": {"code": "invalid_arguments", "message": "...", "details": [...]}}
"""

from django.http import JsonResponse


def error_response(status, code, message, details=None, headers=None):
    body = {"error": {"code": code, "message": message}}
    if details:
        body["error"]["details"] = details
    response = JsonResponse(body, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def database_unavailable():
    # Never a 202 that could be lost: the client must retry later.
    return error_response(
        503, "database_unavailable", "the task database is unreachable; retry later", headers={"Retry-After": "5"}
    )
