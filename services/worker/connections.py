"""Database connection hygiene for worker threads, without a health check per task.

django-dramatiq's DbConnectionsMiddleware calls close_old_connections() before and
after every message; with CONN_HEALTH_CHECKS each call costs a `SELECT 1` round trip
on the next query, two per task. Here connections are checked after a failure (a
broken connection then gets replaced before the retry) and otherwise every few
seconds, as Django does once per request; all are closed when threads stop.
"""

import threading
import time

from django import db
from dramatiq.middleware import Middleware

CHECK_EVERY_SECONDS = 5.0


class DatabaseConnections(Middleware):
    def __init__(self):
        self._local = threading.local()

    def after_process_message(self, broker, message, *, result=None, exception=None):
        now = time.monotonic()
        if exception is not None or now - getattr(self._local, "checked", 0.0) > CHECK_EVERY_SECONDS:
            db.close_old_connections()
            self._local.checked = now

    after_skip_message = after_process_message

    def _close_all(self, *args, **kwargs):
        db.connections.close_all()

    before_consumer_thread_shutdown = _close_all
    before_worker_thread_shutdown = _close_all
    before_worker_shutdown = _close_all
