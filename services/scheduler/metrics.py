"""The scheduler's Prometheus metrics, served by the scheduler process itself.

docs/observability.md ("Metrics") lists them; dashboards and alerts use exactly these names.
"""

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from conveyor.scheduling.models import FireOutcome

FIRES = Counter(
    "conveyor_scheduler_fires_total",
    "Fire times that produced a task (durably enqueued), by schedule.",
    ["schedule"],
)
FIRE_LAG = Histogram(
    "conveyor_scheduler_fire_lag_seconds",
    "Enqueue (commit) time minus due time of each fired task, by schedule.",
    ["schedule"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
)
MISFIRES = Counter(
    "conveyor_scheduler_misfires_total",
    "Fire times not run: past their misfire grace, folded by coalescing, or whose task could not be built.",
    ["schedule"],
)
IS_LEADER = Gauge("conveyor_scheduler_is_leader", "1 on the replica that fires schedules, else 0.")
LAST_HEARTBEAT = Gauge(
    "conveyor_scheduler_last_heartbeat_timestamp_seconds",
    "Unix time of the scheduler loop's last pass (leader or standby).",
)


def declare(schedule_names):
    """Create each schedule's series at zero, so a dashboard shows 0 before the first fire
    and increase() sees the first one."""
    for name in schedule_names:
        FIRES.labels(schedule=name)
        MISFIRES.labels(schedule=name)
        FIRE_LAG.labels(schedule=name)


def record(result):
    """Count one firing.FireResult."""
    if result.outcome == FireOutcome.ENQUEUED and not result.manual:
        FIRES.labels(schedule=result.schedule).inc()
        lag = result.lag_seconds
        if lag is not None:
            FIRE_LAG.labels(schedule=result.schedule).observe(max(lag, 0.0))
    if result.missed:
        MISFIRES.labels(schedule=result.schedule).inc(result.missed)


def serve(host, port):
    start_http_server(port, addr=host)
