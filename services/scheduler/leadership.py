"""Who fires: one leader among the scheduler replicas, chosen by PostgreSQL.

The leader holds a session-level advisory lock on a connection of its own. The lock
goes when that session ends, which covers each way a leader can fail:

- killed (SIGKILL, OOM, the machine): the connection closes and PostgreSQL drops the
  lock at once; a standby gets it on its next try (SCHEDULER_POLL_SECONDS).
- frozen (SIGSTOP, a stuck loop, a network partition): the lock session sets
  `idle_session_timeout` = SCHEDULER_LEADER_TIMEOUT_SECONDS and the leader's loop sends
  a keepalive on it every pass (at most SCHEDULER_POLL_SECONDS apart). A leader that
  stops passing goes silent, PostgreSQL ends its session, the lock is free. The keepalive
  runs in the loop itself, not a side thread, so a hung loop cannot keep the lock alive.
  The fire transactions run with `idle_in_transaction_session_timeout` too, so a leader
  frozen mid-transaction cannot hold a schedule's row lock either.

A leader that wakes after losing its lock finds its lock session dead at its next
keepalive and steps down. Until then it might fire once more alongside the new leader;
that is harmless because exactly-once comes from the database (row lock + cursor +
UNIQUE (schedule, fire_time)), not from leadership. Leadership only keeps the standby idle.

SQLite (a first local run) has no advisory locks: SingleReplica always leads. Run one
scheduler replica there; even so, two would not fire a time twice (the unique key), they
would only contend.
"""

import hashlib
import logging

from django.db import connections

logger = logging.getLogger("conveyor.scheduler")

# One lock per database; derived from a name so it cannot clash with another app's small ints.
LOCK_KEY = int.from_bytes(hashlib.sha256(b"conveyor.scheduler.leader").digest()[:8], "big", signed=True)


class PostgresLeadership:
    def __init__(self, timeout_seconds):
        self.timeout_ms = int(timeout_seconds * 1000)
        self.wrapper = None
        self.leading = False

    def _connect(self):
        # A Django connection of our own, outside the per-thread handler: same settings,
        # but its session (and the lock) lives and dies independently of the ORM's.
        wrapper = connections.create_connection("default")
        wrapper.ensure_connection()
        with wrapper.cursor() as cursor:
            cursor.execute("SELECT set_config('application_name', 'conveyor-scheduler-lock', false)")
            cursor.execute("SELECT set_config('idle_session_timeout', %s, false)", [str(self.timeout_ms)])
        self.wrapper = wrapper

    def poll(self):
        """Acquire or keep leadership; True while this replica leads. Call every pass."""
        try:
            if self.wrapper is None:
                self._connect()
            with self.wrapper.cursor() as cursor:
                if self.leading:
                    cursor.execute("SELECT 1")  # the keepalive; fails if our session was ended
                else:
                    cursor.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_KEY])
                    self.leading = bool(cursor.fetchone()[0])
        except Exception as exc:
            if self.leading:
                logger.warning("Lost the leader lock session (%s); stepping down", exc)
            self._drop()
        return self.leading

    def _drop(self):
        self.leading = False
        if self.wrapper is not None:
            try:
                self.wrapper.close()
            except Exception:
                pass
        self.wrapper = None

    def release(self):
        if self.wrapper is not None and self.leading:
            try:
                with self.wrapper.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [LOCK_KEY])
            except Exception:
                pass
        self._drop()


class SingleReplica:
    leading = True

    def poll(self):
        return True

    def release(self):
        pass


def for_database(timeout_seconds):
    if connections["default"].vendor == "postgresql":
        return PostgresLeadership(timeout_seconds)
    logger.warning(
        "Database is %s, not PostgreSQL: no leader election; run a single scheduler replica",
        connections["default"].vendor,
    )
    return SingleReplica()
