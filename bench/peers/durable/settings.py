"""Django settings of the durable peers only (django-celery-results and django-q2), never Conveyor's.

The database is BENCH_DURABLE_DATABASE_URL (postgres://user[:password]@host:port/name), one
the benchmark creates for the peers on the same PostgreSQL server as Conveyor's, with the
connection options Conveyor's settings use (persistent, health-checked, server-side binding).
"""

import os
from urllib.parse import unquote, urlsplit

_db = urlsplit(os.environ.get("BENCH_DURABLE_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_durable"))

SECRET_KEY = os.environ.get("BENCH_DURABLE_SECRET_KEY", "bench-durable-peers-only-" + "x" * 32)
DEBUG = False  # DEBUG keeps every SQL query in memory
USE_TZ = True
TIME_ZONE = "UTC"
INSTALLED_APPS = ["django.contrib.contenttypes", "django_celery_results", "django_q"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _db.path.lstrip("/"),
        "USER": unquote(_db.username or ""),
        "PASSWORD": unquote(_db.password or ""),
        "HOST": _db.hostname or "",
        "PORT": _db.port or "",
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": {"connect_timeout": 5, "server_side_binding": True},
    }
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}

# django-q2 on its ORM broker (the queue is a table of this database): 2 worker
# processes, every success stored (save_limit 0 = no pruning; -1 would store none).
Q_CLUSTER = {
    "name": "bench",
    "orm": "default",
    "workers": 2,
    "save_limit": 0,
    "timeout": 60,
    "retry": 120,  # must exceed timeout: an unacknowledged task is handed out again after it
    "log_level": "WARNING",
    # Everything else at django-q2's defaults: one task per broker poll ("bulk" 1), a queue
    # of workers**2 tasks between pusher and workers. ("max_attempts" 1 would acknowledge
    # every task twice: once when its row is saved, once after.)
}
