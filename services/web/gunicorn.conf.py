"""gunicorn settings for the web service; every value can be set from the environment."""

import os
import re
import tempfile

bind = os.environ.get("WEB_BIND", "127.0.0.1:8000")
# gunicorn 25+ serves a control socket (for gunicornc) at $HOME/.gunicorn/gunicorn.ctl by
# default. In the container HOME is /app on a read-only root file system: the control
# server failed ("Read-only file system: '/app/.gunicorn'", found by make test-compose).
# And two web services on one machine (make dev beside the tests) would share that path,
# the second unlinking the first's socket. One per user and bind address in the temp folder
# (the container's /tmp is a tmpfs); gunicorn creates the folder with mode 0700.
control_socket = os.path.join(
    tempfile.gettempdir(), f"conveyor-web-{os.getuid()}", re.sub(r"[^0-9A-Za-z.-]", "_", bind) + ".ctl"
)
workers = int(os.environ.get("WEB_PROCESSES", "2"))
# Threads, not only processes: a request mostly waits on PostgreSQL.
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "4"))
# Stop within the container's grace period: finish in-flight requests, then exit.
graceful_timeout = int(os.environ.get("WEB_GRACEFUL_TIMEOUT", "20"))
timeout = 60
accesslog = os.environ.get("WEB_ACCESS_LOG", "-") or None
errorlog = "-"
# The outbox publisher thread starts lazily in each worker after the fork.
preload_app = False


def child_exit(server, worker):
    # A gunicorn worker that exits (restart, timeout) must stop counting in "live" gauges.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
