"""Settings for every Conveyor service, read from the environment.

One table of every variable lives in README.md ("Configuration"); keep the two in step.
Defaults give a working first run on a laptop (SQLite, local RabbitMQ, DEBUG off but
a throwaway secret key is refused outside DEBUG).
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        # A missing key in production must fail loudly, not fall back to a known one.
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set unless DJANGO_DEBUG=true")
    SECRET_KEY = "insecure-development-key-never-use-in-production"

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_dramatiq",
    "conveyor.core",
    "services.web",
    "demo",
]

MIDDLEWARE = [
    # First: times every request and answers Prometheus' scrape before the Host check.
    "services.web.request_metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "services.web.middleware.JSONErrorMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------
# PostgreSQL in production and tests; SQLite (WAL, immediate transactions) when
# DATABASE_URL is unset so that a first local run needs nothing installed.
DATA_DIR = Path(env.str("CONVEYOR_DATA_DIR", default=str(BASE_DIR / "var")))
DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'conveyor.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES["default"]["OPTIONS"] = {
        # Several processes write at once; WAL plus a busy timeout keeps them from
        # failing with "database is locked".
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = 5
    # Server-side parameter binding: PostgreSQL prepares the statements a connection
    # repeats (the worker's lifecycle UPDATEs, the submission INSERTs) instead of
    # parsing and planning each, and psycopg skips quoting every parameter into the SQL.
    # Turn off behind a PgBouncer in transaction mode older than 1.21 (no prepared statements).
    DATABASES["default"]["OPTIONS"]["server_side_binding"] = env.bool("DATABASE_SERVER_SIDE_BINDING", default=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("CONVEYOR_TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("DJANGO_STATIC_ROOT", default=str(DATA_DIR / "static")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Web and workers must see the same folder (a shared volume in compose): the web
# service stores uploads, workers write the thumbnails and reports next to them.
MEDIA_ROOT = Path(env.str("DJANGO_MEDIA_ROOT", default=str(DATA_DIR / "media")))
MEDIA_URL = "media/"

# --- Email (demo tasks) ----------------------------------------------------------
# Django 6.1's MAILERS; console output by default, SMTP (e.g. a mail catcher in
# compose) when DJANGO_EMAIL_BACKEND names the SMTP backend.
_email_backend = env.str("DJANGO_EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
_email_options = {}
if _email_backend.endswith("smtp.EmailBackend"):
    _email_options = {
        "host": env.str("DJANGO_EMAIL_HOST", default="localhost"),
        "port": env.int("DJANGO_EMAIL_PORT", default=25),
        # Well below send_email's time limit (60 s): a mail server that stops answering
        # fails the attempt (and it is retried) instead of holding a worker thread.
        "timeout": env.float("DJANGO_EMAIL_TIMEOUT", default=15.0),
    }
elif _email_backend.endswith("filebased.EmailBackend"):
    _email_options = {"file_path": env.str("DJANGO_EMAIL_FILE_PATH", default=str(DATA_DIR / "mail"))}
MAILERS = {"default": {"BACKEND": _email_backend, "OPTIONS": _email_options}}
DEFAULT_FROM_EMAIL = env.str("DJANGO_DEFAULT_FROM_EMAIL", default="conveyor@localhost")

# --- Request limits --------------------------------------------------------------
# A task body is small JSON; anything larger is refused with 413 before parsing.
CONVEYOR_MAX_BODY_BYTES = env.int("CONVEYOR_MAX_BODY_BYTES", default=1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = CONVEYOR_MAX_BODY_BYTES
CONVEYOR_MAX_UPLOAD_BYTES = env.int("CONVEYOR_MAX_UPLOAD_BYTES", default=10 * 1024 * 1024)
# An image is decoded whole to make thumbnails: a small compressed file can be gigabytes of
# pixels. Uploads over this many pixels are refused (400), and workers decode no more.
CONVEYOR_MAX_IMAGE_PIXELS = env.int("CONVEYOR_MAX_IMAGE_PIXELS", default=40_000_000)
CONVEYOR_MAX_BATCH = 1000
# Steps in one workflow (conveyor.workflows): more is refused with 400 before anything is stored.
CONVEYOR_WORKFLOW_MAX_STEPS = env.int("CONVEYOR_WORKFLOW_MAX_STEPS", default=10_000)

# --- Broker and tasks ------------------------------------------------------------
# One node, or several separated by ';' (a cluster): every client tries them in order.
BROKER_URL = env.str("BROKER_URL", default="amqp://guest:guest@127.0.0.1:5672/%2F")
# classic (one node) or quorum (replicated queues on a cluster; conveyor/queue_types.py says
# what changes). Switching a running deployment is a migration: deploy/k8s/SCALING.md.
CONVEYOR_QUEUE_TYPE = env.str("CONVEYOR_QUEUE_TYPE", default="classic")
if CONVEYOR_QUEUE_TYPE not in ("classic", "quorum"):
    raise ImproperlyConfigured(f"CONVEYOR_QUEUE_TYPE must be classic or quorum, not {CONVEYOR_QUEUE_TYPE!r}")
# Quorum queues: deliveries of one message before RabbitMQ dead-letters it (a backstop;
# CONVEYOR_MAX_WORKER_DEATHS fails a task that kills its worker long before).
CONVEYOR_QUORUM_DELIVERY_LIMIT = env.int("CONVEYOR_QUORUM_DELIVERY_LIMIT", default=50)
CONVEYOR_QUEUES = env.list("CONVEYOR_QUEUES", default=["default", "emails", "images", "reports"])
# Every task has a time limit. Keep it, and the longest retry backoff, well under
# RabbitMQ's consumer_timeout (30 min): Dramatiq holds retrying messages unacked.
CONVEYOR_TIME_LIMIT_SECONDS = env.int("CONVEYOR_TIME_LIMIT_SECONDS", default=300)
CONVEYOR_MAX_RETRIES = env.int("CONVEYOR_MAX_RETRIES", default=3)
# Who may run a task over HTTP when its @task does not say (http="write" | "admin" | "none"):
# admin tokens only, so a new task is not open to every write token until its author says so.
CONVEYOR_TASK_HTTP_DEFAULT = env.str("CONVEYOR_TASK_HTTP_DEFAULT", default="admin")
CONVEYOR_MIN_BACKOFF_MS = env.int("CONVEYOR_MIN_BACKOFF_MS", default=1000)
CONVEYOR_MAX_BACKOFF_MS = env.int("CONVEYOR_MAX_BACKOFF_MS", default=5 * 60 * 1000)
CONVEYOR_OUTBOX_LEASE_SECONDS = env.float("CONVEYOR_OUTBOX_LEASE_SECONDS", default=10.0)
CONVEYOR_RELAY_INTERVAL_SECONDS = env.float("CONVEYOR_RELAY_INTERVAL_SECONDS", default=0.5)
CONVEYOR_WORKER_SHUTDOWN_TIMEOUT_SECONDS = env.int("CONVEYOR_WORKER_SHUTDOWN_TIMEOUT_SECONDS", default=60)
# A worker process renews its lease every HEARTBEAT seconds; a RUNNING task whose worker's
# lease is older than LEASE is taken over by another worker (docs/how-it-works.md).
CONVEYOR_WORKER_HEARTBEAT_SECONDS = env.float("CONVEYOR_WORKER_HEARTBEAT_SECONDS", default=5.0)
CONVEYOR_WORKER_LEASE_SECONDS = env.float("CONVEYOR_WORKER_LEASE_SECONDS", default=30.0)
# A task whose worker process died this many times while running it is FAILED and dead-lettered.
CONVEYOR_MAX_WORKER_DEATHS = env.int("CONVEYOR_MAX_WORKER_DEATHS", default=3)
# A task still running this long after its time limit is stuck where Python cannot interrupt
# it: it is FAILED and its worker process replaced (services/worker/watchdog.py).
CONVEYOR_HARD_TIME_LIMIT_GRACE_SECONDS = env.float("CONVEYOR_HARD_TIME_LIMIT_GRACE_SECONDS", default=30.0)

# --- Scheduler (services/scheduler) ----------------------------------------------
# How often the leader re-reads schedules (edits are picked up within this) and a standby
# retries the leader lock.
SCHEDULER_POLL_SECONDS = env.float("SCHEDULER_POLL_SECONDS", default=1.0)
# A leader that stops talking to PostgreSQL (dead, frozen, partitioned) loses its lock
# after this long (idle_session_timeout on the lock session); a standby then takes over.
SCHEDULER_LEADER_TIMEOUT_SECONDS = env.int("SCHEDULER_LEADER_TIMEOUT_SECONDS", default=20)
SCHEDULER_HEARTBEAT_FILE = env.str("SCHEDULER_HEARTBEAT_FILE", default=str(DATA_DIR / "scheduler.heartbeat"))
SCHEDULER_METRICS_HOST = env.str("SCHEDULER_METRICS_HOST", default="127.0.0.1")
SCHEDULER_METRICS_PORT = env.int("SCHEDULER_METRICS_PORT", default=9300)
# Finished task records older than this are deleted by conveyor.core.tasks.purge_finished_tasks.
CONVEYOR_TASK_RETENTION_DAYS = env.int("CONVEYOR_TASK_RETENTION_DAYS", default=30)

TASKS = {
    "default": {
        "BACKEND": "conveyor.backend.ConveyorBackend",
        "QUEUES": CONVEYOR_QUEUES,
    }
}

DRAMATIQ_ENCODER = "conveyor.encoding.StrictJSONEncoder"
DRAMATIQ_BROKER = {
    # Dramatiq's RabbitMQ broker with Conveyor's record path: tasks started in batches,
    # messages acknowledged only after their run's outcome is committed (services/worker/).
    "BROKER": "services.worker.broker.RabbitmqBroker",
    "OPTIONS": {
        "url": BROKER_URL,
        # Without confirms a send() can return and the message still be lost.
        "confirm_delivery": True,
        # Django priorities (-100..100) map onto RabbitMQ priorities 0..10. Quorum queues
        # refuse x-max-priority (conveyor/queue_types.py).
        "max_priority": 10 if CONVEYOR_QUEUE_TYPE == "classic" else None,
    },
    # Listed explicitly: django-dramatiq's default names a Prometheus path dramatiq 2
    # removed, and without this key retries and time limits are silently dropped.
    # Order matters: "after" hooks run in reverse order, so Lifecycle, listed before
    # Retries, sees Retries' verdict, and TaskMetrics, listed before Lifecycle, its outcome.
    # Dramatiq's AgeLimit, Callbacks and Pipelines are left out: Conveyor's messages never
    # use them, and every middleware costs a call per hook per message.
    "MIDDLEWARE": [
        # Serves the container's metrics on dramatiq_prom_host:dramatiq_prom_port.
        "services.worker.exposition.MetricsExposition",
        "dramatiq.middleware.TimeLimit",
        # What TimeLimit cannot stop (a blocking C call): fail the task, replace the process.
        "services.worker.watchdog.HardTimeLimit",
        "dramatiq.middleware.ShutdownNotifications",
        "services.worker.signals.GracefulStop",
        "services.worker.metrics.TaskMetrics",
        "services.worker.lifecycle.Lifecycle",
        # Dramatiq's Retries deciding; the retry itself waits in the outbox (see there).
        "services.worker.retries.Retries",
        "services.worker.connections.DatabaseConnections",
        # The database lease and the heartbeat file the container healthcheck reads.
        "services.worker.heartbeat.Heartbeat",
    ],
}
DRAMATIQ_AUTODISCOVER_MODULES = ["tasks"]

# --- Metrics (docs/observability.md, "Metrics") -------------------------------------------------
# The web service's /metrics reads queue depths from RabbitMQ at scrape time. With the
# management API (e.g. http://user:pass@rabbitmq:15672) it also reports unacked counts.
RABBITMQ_MANAGEMENT_URL = env.str("RABBITMQ_MANAGEMENT_URL", default="")
# Queue figures (depth from RabbitMQ, oldest waiting task from the database) are read at most
# this often per web process and served from memory in between: scrapes cannot load the broker.
CONVEYOR_QUEUE_METRICS_SECONDS = env.float("CONVEYOR_QUEUE_METRICS_SECONDS", default=5.0)

# --- Security --------------------------------------------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# TLS usually ends at the load balancer; turn the redirect on where Django sees
# X-Forwarded-Proto (the production profile in .env.example does).
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=False)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31536000 if SECURE_SSL_REDIRECT else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s"}},
    "filters": {"results": {"()": "conveyor.log_filters.DropDiscardedResultWarning"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["results"]}},
    "root": {"handlers": ["console"], "level": env.str("CONVEYOR_LOG_LEVEL", default="INFO")},
    "loggers": {
        "pika": {"level": "WARNING"},
        "django.tasks": {"level": "WARNING"},
    },
}
