"""Celery storing every result in PostgreSQL with django-celery-results, acks after the task.

Run by `celery -A bench.peers.durable.celery_app worker` with DJANGO_SETTINGS_MODULE set to
bench.peers.durable.settings (Celery's Django fix-up sets Django up in the worker).
Everything not named here is Celery's default (prefetch multiplier 4 among them).
"""

import os

from celery import Celery

QUEUE = "bench"

app = Celery("bench_durable", broker=os.environ.get("BENCH_DURABLE_CELERY_URL"))
app.conf.update(
    result_backend="django-db",
    task_track_started=True,  # a STARTED row before the task runs, then SUCCESS
    task_acks_late=True,  # the message is acked after the task (and its result) finished
    broker_transport_options={"confirm_publish": True},  # publisher confirms
    task_default_queue=QUEUE,
    worker_hijack_root_logger=False,
    worker_send_task_events=False,
    broker_connection_retry_on_startup=True,
    # Celery's Django fix-up closes the database connection before and after every task
    # unless told to reuse it (it reads this from the app's configuration): a deployment
    # tuned for throughput would, so the peer does.
    CELERY_DB_REUSE_MAX=1000,
)


@app.task(name="bench.durable.noop")
def noop():
    pass
