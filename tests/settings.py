"""Test settings: the real settings, pointed at PostgreSQL and a private RabbitMQ vhost.

Environment defaults are set before config.settings reads them; anything already
in the environment wins (CI can point at other servers).
"""

import os
import secrets

os.environ.setdefault("DJANGO_SECRET_KEY", "test-" + secrets.token_hex(16))
_session = f"{os.getpid()}_{secrets.token_hex(3)}"
# pytest-django creates (and drops) test_<name>: unique per session, like the vhost.
os.environ.setdefault("DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/conveyor_{_session}")
os.environ.setdefault("CONVEYOR_RABBITMQ_HOST", "127.0.0.1:5672")
# One vhost per test session (created in conftest, deleted afterwards): parallel runs
# and leftovers from a killed run never share a queue.
os.environ.setdefault("CONVEYOR_TEST_VHOST", f"conveyor-test-{_session}")
os.environ.setdefault(
    "BROKER_URL",
    f"amqp://guest:guest@{os.environ['CONVEYOR_RABBITMQ_HOST']}/{os.environ['CONVEYOR_TEST_VHOST']}",
)
os.environ.setdefault("CONVEYOR_MIN_BACKOFF_MS", "100")
os.environ.setdefault("CONVEYOR_MAX_BACKOFF_MS", "1000")
os.environ.setdefault("CONVEYOR_OUTBOX_LEASE_SECONDS", "2")
os.environ.setdefault("CONVEYOR_RELAY_INTERVAL_SECONDS", "0.2")

from config.settings import *  # noqa: E402,F403

MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

import tempfile  # noqa: E402

STATIC_ROOT = tempfile.mkdtemp(prefix="conveyor-static-")  # whitenoise wants it to exist
MEDIA_ROOT = tempfile.mkdtemp(prefix="conveyor-media-")
