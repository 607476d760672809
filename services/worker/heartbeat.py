"""Dramatiq middleware: touch the worker's heartbeat file while it can take work.

A thread beats every few seconds as long as every consumer thread (one per queue) and
every worker thread is alive; if one dies, the beats stop and the container's
healthcheck (`python -m conveyor.heartbeat worker`) turns unhealthy. A broker outage
does not stop the beats: the consumers reconnect on their own, and restarting the
container would not bring the broker back.
"""

import threading

from dramatiq.middleware import Middleware

from conveyor import heartbeat

INTERVAL_SECONDS = 5.0


class Heartbeat(Middleware):
    def __init__(self):
        self._stop = threading.Event()

    def after_worker_boot(self, broker, worker):
        threading.Thread(target=self._run, args=(worker,), name="conveyor-heartbeat", daemon=True).start()

    def before_worker_shutdown(self, broker, worker):
        self._stop.set()
        heartbeat.forget("worker")

    def _run(self, worker):
        while not self._stop.is_set():
            threads = [*worker.consumers.values(), *worker.workers]
            if threads and all(thread.is_alive() for thread in threads):
                heartbeat.beat("worker")
            self._stop.wait(INTERVAL_SECONDS)
