"""Health endpoints for load balancers and orchestrators (no token needed)."""

import logging
import time

from django.conf import settings
from django.db import connection
from django.http import JsonResponse

from conveyor import broker_urls

logger = logging.getLogger(__name__)

_broker_check = {"at": 0.0, "ok": False, "error": ""}
# The unauthenticated answer says what is down, never why: exception text can name hosts and users.
UNREACHABLE = "unreachable"
BROKER_CHECK_TTL = 2.0  # seconds; a probe every second must not open a connection each time


def healthz(request):
    """The process is alive and serving requests."""
    return JsonResponse({"status": "ok"})


def _broker_ok():
    now = time.monotonic()
    if now - _broker_check["at"] > BROKER_CHECK_TTL:
        try:
            # Ready when any of BROKER_URL's nodes answers: every client fails over to it.
            broker_urls.connect(settings.BROKER_URL, timeout=2).close()
            _broker_check.update(ok=True, error="")
        except Exception as exc:
            logger.warning("readyz: broker check failed: %s: %s", type(exc).__name__, exc)
            _broker_check.update(ok=False, error=UNREACHABLE)
        _broker_check["at"] = now
    return _broker_check["ok"], _broker_check["error"]


def readyz(request):
    """Ready for traffic: the database and the broker answer."""
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:
        logger.warning("readyz: database check failed: %s: %s", type(exc).__name__, exc)
        checks["database"] = UNREACHABLE
    ok, error = _broker_ok()
    checks["broker"] = "ok" if ok else error
    ready = all(v == "ok" for v in checks.values())
    return JsonResponse({"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503)
