"""Celery with its defaults (acks before running, prefetch multiplier 4), no result backend."""

import os

from celery import Celery

QUEUE = "bench"

app = Celery("bench", broker=os.environ.get("BENCH_CELERY_URL"))
app.conf.update(
    task_ignore_result=True,
    task_default_queue=QUEUE,
    worker_hijack_root_logger=False,
    worker_send_task_events=False,
    broker_connection_retry_on_startup=True,
)


@app.task(name="bench.noop")
def noop():
    pass
