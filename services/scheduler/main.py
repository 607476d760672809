"""The scheduler process: `python -m services.scheduler` (services/scheduler/start.sh).

One loop, in one thread, on every replica:

    keep or try to take the leader lock        (leadership.py)
    if leading: fire every due schedule         (conveyor.scheduling.firing)
    write the heartbeat file, set the gauges
    sleep until the next due fire time, at most SCHEDULER_POLL_SECONDS

Schedules are read from the database on every pass (one indexed query for the due
ones, one for the earliest next fire time), so an edit in the admin or the API is
picked up within SCHEDULER_POLL_SECONDS without a restart, and there is no in-memory
job store to go stale. APScheduler computes the fire times (its triggers); its job
stores and executors are not used because they cannot be shared between processes.
SIGTERM / SIGINT: finish the pass, release the lock, exit 0.
"""

import logging
import os
import signal
import threading
import time

logger = logging.getLogger("conveyor.scheduler")


def _session_timeouts(sender, connection, **kwargs):
    """Every ORM session of the scheduler: a frozen process cannot hold row locks for long."""
    if connection.vendor != "postgresql":
        return
    from django.conf import settings  # connected by run(), after django.setup()

    timeout_ms = str(settings.SCHEDULER_LEADER_TIMEOUT_SECONDS * 1000)
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('idle_in_transaction_session_timeout', %s, false)", [timeout_ms])
        cursor.execute("SELECT set_config('statement_timeout', %s, false)", [timeout_ms])
        cursor.execute("SELECT set_config('application_name', 'conveyor-scheduler', false)")


def _declare_series():
    # Late: called after django.setup() (run() below), as the models need it.
    from conveyor.scheduling.models import Schedule
    from services.scheduler import metrics

    metrics.declare(Schedule.objects.filter(enabled=True).values_list("name", flat=True))


def run():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()

    # Only now: these modules use Django's settings and models, which django.setup() loads.
    from django.conf import settings
    from django.db import close_old_connections, connection
    from django.db.backends.signals import connection_created
    from django.utils import timezone

    from conveyor.publisher import publisher
    from conveyor.scheduling import declarations, firing
    from services.scheduler import heartbeat, leadership, metrics

    connection_created.connect(_session_timeouts)
    poll = settings.SCHEDULER_POLL_SECONDS
    if settings.SCHEDULER_LEADER_TIMEOUT_SECONDS < 3 * poll:
        raise SystemExit("SCHEDULER_LEADER_TIMEOUT_SECONDS must be at least 3 x SCHEDULER_POLL_SECONDS")

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    metrics.serve(settings.SCHEDULER_METRICS_HOST, settings.SCHEDULER_METRICS_PORT)
    metrics.IS_LEADER.set(0)
    elector = leadership.for_database(settings.SCHEDULER_LEADER_TIMEOUT_SECONDS)
    logger.info(
        "Scheduler started (pid %d, metrics on %s:%d, heartbeat %s, %d schedule(s) declared in code)",
        os.getpid(),
        settings.SCHEDULER_METRICS_HOST,
        settings.SCHEDULER_METRICS_PORT,
        settings.SCHEDULER_HEARTBEAT_FILE,
        len(declarations.declarations()),
    )

    was_leading, passes = False, 0
    while not stop.is_set():
        wait, error = poll, None
        try:
            close_old_connections()
            leading = elector.poll()
            if leading != was_leading:
                logger.info("This replica is now %s", "the leader" if leading else "a standby")
                if leading:
                    declarations.sync()
                    _declare_series()
            was_leading = leading
            metrics.IS_LEADER.set(1 if leading else 0)
            if leading:
                if passes % 30 == 0:  # schedules created at runtime get theirs too
                    _declare_series()
                for result in firing.fire_due():
                    metrics.record(result)
                due = firing.next_due_time()
                if due is not None:
                    wait = min(poll, max(0.0, (due - timezone.now()).total_seconds()) + 0.001)
        except Exception as exc:
            logger.exception("Scheduler pass failed; retrying in %.1fs", poll)
            error = f"{type(exc).__name__}: {exc}"[:300]
            try:
                connection.close()  # a broken session is replaced on the next pass
            except Exception:
                pass
        passes += 1
        now = time.time()
        heartbeat.write(settings.SCHEDULER_HEARTBEAT_FILE, leader=was_leading, passes=passes, error=error)
        metrics.LAST_HEARTBEAT.set(now)
        stop.wait(wait)

    logger.info("Scheduler stopping")
    elector.release()
    metrics.IS_LEADER.set(0)
    publisher.flush()  # tasks fired in the last pass: publish now rather than leave them to the relay
    logger.info("Scheduler stopped")
