"""Two scheduler replicas as real processes against one PostgreSQL database.

Exactly once, none missed: every fire time of a 1-second schedule produces exactly one
task while two replicas run, and across the leader being killed or frozen. The test
schedules use coalesce=False and no misfire grace, so a fire time missed during a
takeover must be caught up by the new leader, not skipped: any gap is a failure.
"""

import signal
import time
from datetime import timedelta

import pytest

from conveyor.core.models import TaskRecord
from conveyor.scheduling.models import Schedule
from services.scheduler import fire_lag
from tests.scheduler.support import Scheduler, leaders
from tests.support.processes import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def every_second(name):
    return Schedule.objects.create(name=name, task_path="demo.tasks.noop", interval_seconds=1, coalesce=False)


def fire_times(name):
    return list(TaskRecord.objects.filter(schedule_name=name).order_by("fire_time").values_list("fire_time", flat=True))


def assert_each_fire_time_once_without_gaps(name):
    times = fire_times(name)
    assert times, "no task was fired"
    assert len(times) == len(set(times)), (
        f"fire times enqueued twice: {sorted({t for t in times if times.count(t) > 1})}"
    )
    gaps = [(a, b) for a, b in zip(times, times[1:], strict=False) if b - a != timedelta(seconds=1)]
    assert not gaps, f"fire times missed between: {gaps[:5]}"
    return times


def test_two_replicas_fire_each_time_exactly_once_for_a_minute():
    # Given a schedule firing every second and two scheduler replicas on one database
    every_second("every-second")
    replicas = [Scheduler("scheduler-a").start(), Scheduler("scheduler-b").start()]
    try:
        wait_for(lambda: len(leaders(*replicas)) == 1, 30, "one leader")
        # When both run side by side for over a minute
        started = time.monotonic()
        leader_counts = set()
        while time.monotonic() - started < 62:
            leader_counts.add(len(leaders(*replicas)))
            assert all(r.proc.poll() is None for r in replicas), "a replica exited"
            time.sleep(1)
    finally:
        for replica in replicas:
            replica.stop()
    # Then exactly one of them led throughout, and every fire time made exactly one task
    assert leader_counts == {1}, "\n".join(r.output()[-3000:] for r in replicas)
    times = assert_each_fire_time_once_without_gaps("every-second")
    assert times[-1] - times[0] >= timedelta(seconds=60)
    # Measured, not asserted (docs/scheduler.md, "Fire lag"); the first fires are the catch-up
    # of fire times that fell due while the replicas were starting.
    print("fire lag (steady state):", fire_lag.summary(fire_lag.lag_seconds("every-second", skip_first=5)))


def test_standby_takes_over_within_30s_when_the_leader_is_killed():
    # Given two replicas, one leading a 1-second schedule
    every_second("after-kill")
    replicas = [Scheduler("scheduler-a").start(), Scheduler("scheduler-b").start()]
    try:
        wait_for(lambda: len(leaders(*replicas)) == 1, 30, "one leader")
        wait_for(lambda: len(fire_times("after-kill")) >= 3, 30, "first fires")
        (leader,) = leaders(*replicas)
        (standby,) = [r for r in replicas if r is not leader]
        # When the leader is killed with SIGKILL
        leader.kill()
        # Then the standby leads within 30 seconds
        wait_for(standby.is_leader, 30, "the standby to take over")
        # ... and keeps firing
        count = len(fire_times("after-kill"))
        wait_for(lambda: len(fire_times("after-kill")) >= count + 3, 30, "fires after the takeover")
    finally:
        for replica in replicas:
            replica.stop()
    # and no fire time was emitted twice (nor skipped: the new leader caught up the gap)
    assert_each_fire_time_once_without_gaps("after-kill")


def test_standby_takes_over_from_a_frozen_leader():
    # Given two replicas whose leader lock lapses after 3 s of silence
    every_second("after-freeze")
    settings = {"SCHEDULER_LEADER_TIMEOUT_SECONDS": "3", "SCHEDULER_POLL_SECONDS": "0.5"}
    replicas = [Scheduler("scheduler-a", **settings).start(), Scheduler("scheduler-b", **settings).start()]
    try:
        wait_for(lambda: len(leaders(*replicas)) == 1, 30, "one leader")
        wait_for(lambda: len(fire_times("after-freeze")) >= 3, 30, "first fires")
        (leader,) = leaders(*replicas)
        (standby,) = [r for r in replicas if r is not leader]
        # When the leader freezes (SIGSTOP: its connections stay open, it says nothing)
        leader.signal_group(signal.SIGSTOP)
        # Then the standby takes over
        wait_for(standby.is_leader, 30, "the standby to take over from the frozen leader")
        count = len(fire_times("after-freeze"))
        # and when the old leader wakes up, it steps down instead of leading twice
        leader.signal_group(signal.SIGCONT)
        wait_for(lambda: leaders(*replicas) == [standby], 30, "the old leader to step down")
        wait_for(lambda: len(fire_times("after-freeze")) >= count + 3, 30, "fires after the takeover")
    finally:
        for replica in replicas:
            replica.signal_group(signal.SIGCONT)
            replica.stop()
    assert_each_fire_time_once_without_gaps("after-freeze")
