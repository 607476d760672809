"""Enqueue N no-op tasks for one durable peer, with the peers' Django settings; print the versions.

    DJANGO_SETTINGS_MODULE=bench.peers.durable.settings python -m bench.peers.durable.load celery 5000

Run as a subprocess by bench.peers.durable.drain (its main process has Conveyor's
settings loaded), with the peer's Python. The last line printed is a JSON object of the
versions that ran, so the report can say which Django each peer had.
"""

import json
import os
import platform
import sys
from importlib import metadata

PACKAGES = {
    "celery": ("django", "celery", "kombu", "django-celery-results"),
    "django_q": ("django", "django-q2"),
}


def load_celery(count):
    from bench.peers.durable.celery_app import app, noop

    # Each publish waits for RabbitMQ's confirm (confirm_publish), as in production.
    with app.producer_or_acquire() as producer:
        for _ in range(count):
            noop.apply_async(producer=producer)


def load_django_q(count):
    from django_q.brokers import get_broker
    from django_q.tasks import async_task

    broker = get_broker()  # the ORM broker: one row of django_q_ormq per task
    for _ in range(count):
        async_task("bench.peers.durable.tasks.noop", broker=broker)


def main():
    peer, count = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.peers.durable.settings")
    import django

    django.setup()
    {"celery": load_celery, "django_q": load_django_q}[peer](count)
    found = {"python": platform.python_version()}
    found.update({name: metadata.version(name) for name in PACKAGES[peer]})
    print(json.dumps(found), flush=True)


if __name__ == "__main__":
    main()
