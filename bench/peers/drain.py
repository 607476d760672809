"""Load N messages onto a peer's queue, start its workers, time the drain.

The drain is timed from the outside by polling the queue depth (passive declare,
every 20 ms): from the first moment the depth falls below N (a worker took the first
messages) to the moment it reaches 0. Messages prefetched but not yet acked at that
moment (at most prefetch x processes, a few milliseconds of work) are not waited for.
CPU per message: CPU time of the whole worker process group over the same window,
divided by the messages drained in it.
"""

import time

import pika

from bench import infra

PEER_ENV_DROP = ("DJANGO_SETTINGS_MODULE", "BROKER_URL", "DATABASE_URL")
QUEUE = "bench"  # the peers' queue name (bench.peers.dramatiq_app, bench.peers.celery_app)


def depth(channel, queue):
    return channel.queue_declare(queue, passive=True).method.message_count


def time_drain(url, queue, count, start_workers, timeout):
    with pika.BlockingConnection(pika.URLParameters(url)) as conn:
        channel = conn.channel()
        infra.wait_for(lambda: depth(channel, queue) >= count, 60, f"{count} messages on {queue}")
        workers = start_workers()
        try:
            deadline = time.monotonic() + timeout
            started, last_full, last_full_cpu = None, time.perf_counter(), infra.group_cpu_seconds([workers])
            while time.monotonic() < deadline:
                left = depth(channel, queue)
                now = time.perf_counter()
                if started is None and left == 0:
                    # Drained within one poll (a tiny run): it began after the last full look.
                    started, left_at_start, cpu_at_start = last_full, count, last_full_cpu
                elif started is None and left < count:
                    started, left_at_start, cpu_at_start = now, left, infra.group_cpu_seconds([workers])
                elif started is None:
                    last_full, last_full_cpu = now, infra.group_cpu_seconds([workers])
                if left == 0:
                    cpu_ms = 1000 * (infra.group_cpu_seconds([workers]) - cpu_at_start) / max(1, left_at_start)
                    return count / (now - started), cpu_ms, workers
                time.sleep(0.02)
            raise TimeoutError(f"{queue} not drained in {timeout}s ({left} left)")
        except BaseException:
            workers.stop()
            raise


def dramatiq_load(url, count):
    import dramatiq
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    # Not bench.peers.dramatiq_app: importing it would replace this process's global
    # broker, which belongs to Conveyor. A broker of our own: the global one belongs to Conveyor in this process.
    broker = RabbitmqBroker(url=url, middleware=[])
    try:
        broker.declare_queue(QUEUE)
        for _ in range(count):
            broker.enqueue(dramatiq.Message(queue_name=QUEUE, actor_name="noop", args=(), kwargs={}, options={}))
    finally:
        broker.close()


def run_dramatiq(url, cfg, processes=2):
    count = cfg.n(cfg.drain_messages)
    dramatiq_load(url, count)

    def start():
        return infra.Process(
            "dramatiq",
            [
                "dramatiq",
                "bench.peers.dramatiq_app",
                "--processes",
                str(processes),
                "--threads",
                str(cfg.worker_threads),
            ],
            infra.python_env(PEER_ENV_DROP, BENCH_DRAMATIQ_URL=url),
        )

    rate, cpu_ms, workers = time_drain(url, QUEUE, count, start, timeout=120)
    workers.stop()
    return rate, cpu_ms


def celery_load(url, count):
    from bench.peers.celery_app import app, noop

    app.conf.broker_url = url
    with app.producer_or_acquire() as producer:
        for _ in range(count):
            noop.apply_async(producer=producer)


def run_celery(url, cfg, processes=2):
    count = cfg.n(cfg.drain_messages)
    celery_load(url, count)

    def start():
        return infra.Process(
            "celery",
            [
                "celery",
                "-A",
                "bench.peers.celery_app",
                "worker",
                "--pool",
                "prefork",
                "--concurrency",
                str(processes),
                "--queues",
                "bench",
                "--loglevel",
                "WARNING",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--hostname",
                "bench@%h",
            ],
            # Without Django's settings in its environment: Celery's Django fix-up would
            # otherwise pick up Conveyor's BROKER_URL and consume from the wrong vhost.
            infra.python_env(PEER_ENV_DROP, BENCH_CELERY_URL=url),
        )

    rate, cpu_ms, workers = time_drain(url, QUEUE, count, start, timeout=180)
    workers.stop()
    return rate, cpu_ms
