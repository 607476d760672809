"""Which worker processes are alive: a row each, with a lease renewed by a heartbeat.

A RUNNING task names the worker process running it (TaskRecord.worker). Whether that
run is still going is decided from facts, never from RabbitMQ's `redelivered` flag:

- the worker's row was renewed within CONVEYOR_WORKER_LEASE_SECONDS (its heartbeat
  thread renews it every CONVEYOR_WORKER_HEARTBEAT_SECONDS), or
- on the same host (same boot, same PID namespace), the process itself: a worker whose
  pid no longer exists, or now belongs to a process started at another time, is gone
  at once, without waiting for its lease to run out.

Only then may another worker take the task over (conveyor.states.claim).
"""

import os
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from conveyor.core.models import WorkerProcess


@dataclass(frozen=True, slots=True)
class Identity:
    """This process, as other processes see it."""

    id: str
    hostname: str
    pid: int
    host_key: str
    pid_started: int


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def _host_key() -> str:
    # Same boot and same PID namespace: only then does a pid name the same process.
    try:
        pid_namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        pid_namespace = 0
    return f"{socket.gethostname()}|{_read('/proc/sys/kernel/random/boot_id')}|{pid_namespace}"


def _started(pid: int) -> int:
    """The process's start time in clock ticks since boot (0 when unknown or gone)."""
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return 0
    try:
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (IndexError, ValueError):
        return 0


def identity() -> Identity:
    """This process's identity (a new random part per process, so a reused pid is a new worker)."""
    hostname, pid = socket.gethostname(), os.getpid()
    # host:random:pid, so a pid reused after a restart (pid 1 in every container) is a new worker.
    return Identity(f"{hostname[:80]}:{secrets.token_hex(3)}:{pid}", hostname, pid, _host_key(), _started(pid))


def register(me: Identity, *, threads: int, queues: list[str]) -> None:
    now = timezone.now()
    WorkerProcess.objects.update_or_create(
        id=me.id,
        defaults={
            "hostname": me.hostname[:100],
            "pid": me.pid,
            "host_key": me.host_key[:200],
            "pid_started": me.pid_started,
            "threads": threads,
            "queues": sorted(queues),
            "started_at": now,
            "seen_at": now,
        },
    )


def renew(me: Identity, running: list[dict] | None = None) -> bool | None:
    """Renew this worker's lease (and report what it runs); whether an operator asked it to be quiet.

    None if its row is gone (it was declared dead: re-register).
    """
    fields = {"seen_at": timezone.now()}
    if running is not None:
        fields["running"] = running
    if not WorkerProcess.objects.filter(id=me.id).update(**fields):
        return None
    return bool(WorkerProcess.objects.filter(id=me.id).values_list("quiet", flat=True).first())


def set_quiet(worker_id: str, quiet: bool = True) -> bool:
    """Ask a worker process to take nothing new (or to take work again); False if it is gone."""
    return bool(WorkerProcess.objects.filter(id=worker_id).update(quiet=quiet))


def forget(me: Identity) -> None:
    """A clean exit: the row goes, so nothing waits for its lease."""
    WorkerProcess.objects.filter(id=me.id).delete()


def lease() -> timedelta:
    return timedelta(seconds=settings.CONVEYOR_WORKER_LEASE_SECONDS)


def gone_on_this_host(worker_ids: set[str], me: Identity) -> list[str]:
    """Of these workers, those on this host (same boot and PID namespace) whose process is gone."""
    if not worker_ids:
        return []
    gone = []
    rows = WorkerProcess.objects.filter(id__in=worker_ids, host_key=me.host_key).values_list("id", "pid", "pid_started")
    for worker_id, pid, pid_started in rows:
        if worker_id != me.id and _started(pid) != pid_started:
            gone.append(worker_id)
    return gone


def declare_dead(worker_ids: list[str]) -> int:
    """Remove the rows of workers known to be gone, so their tasks can be taken over now."""
    return WorkerProcess.objects.filter(id__in=worker_ids).delete()[0]


def purge_expired(older_than: datetime) -> int:
    """Forget workers whose lease ran out before `older_than` (crashed long ago)."""
    return WorkerProcess.objects.filter(seen_at__lt=older_than).delete()[0]
