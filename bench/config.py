"""Every size and setting of one benchmark run, from the environment (prefix BENCH_).

BENCH_SCALE multiplies every message count and duration, so the same code runs as the
full benchmark (1.0, under 15 minutes on 2 cores) and as the smoke test (about 0.02).
"""

import os
from dataclasses import asdict, dataclass, field


def _float(name, default):
    return float(os.environ.get(name, default))


def _int(name, default):
    return int(os.environ.get(name, default))


@dataclass(frozen=True)
class Config:
    scale: float = field(default_factory=lambda: _float("BENCH_SCALE", 1.0))
    repeats: int = field(default_factory=lambda: _int("BENCH_REPEATS", 3))
    # Machine limit: messages published (confirms every `confirm_batch`) then consumed.
    machine_messages: int = 20000
    confirm_batch: int = 500
    consumer_prefetch: int = 200
    message_bytes: int = 64
    # Drains: bare Dramatiq, Celery and Conveyor each drain this many no-op messages.
    drain_messages: int = 5000
    worker_threads: int = field(default_factory=lambda: _int("BENCH_WORKER_THREADS", 8))
    # Submission.
    http_seconds: float = 8.0
    wrk_connections: int = field(default_factory=lambda: _int("BENCH_WRK_CONNECTIONS", 8))
    wrk_threads: int = 1
    batch_size: int = 1000
    batch_requests: int = 8
    enqueue_calls: int = 2000
    web_processes: int = 2
    web_threads: int = 4
    # Latency at a steady rate.
    latency_rate: float = 200.0
    latency_seconds: float = 10.0
    # Workflows (with the latency phase's workers): a chord of this many members, and a
    # 10-step chain against 10 single tasks, each run this many times.
    chord_members: int = 1000
    chain_runs: int = 5
    # Horizontal scale: sleep(sleep_seconds) tasks, each run lasting about scale_seconds at the ideal rate.
    scale_processes: tuple = field(
        default_factory=lambda: tuple(int(p) for p in os.environ.get("BENCH_SCALE_PROCESSES", "1,2,4").split(","))
    )
    sleep_seconds: float = 0.1
    scale_seconds: float = 4.0
    # The growth phase: finished rows written before its drain and list timings (None: 1e6 x scale).
    growth_rows: int | None = field(
        default_factory=lambda: int(os.environ["BENCH_GROWTH_ROWS"]) if os.environ.get("BENCH_GROWTH_ROWS") else None
    )
    # The dashboard phase: task rows loaded before its page timings (None: 1e6 x scale).
    dashboard_rows: int | None = field(
        default_factory=lambda: (
            int(os.environ["BENCH_DASHBOARD_ROWS"]) if os.environ.get("BENCH_DASHBOARD_ROWS") else None
        )
    )
    # BENCH_PEERS=0: the drains phase runs Conveyor's drains only (quick before/after checks).
    peers: bool = field(default_factory=lambda: os.environ.get("BENCH_PEERS", "1") != "0")
    # Which parts run: drains, submission, latency, scale, growth, dashboard, profile (py-spy on a
    # worker; not by default).
    phases: tuple = field(
        default_factory=lambda: tuple(
            os.environ.get("BENCH_PHASES", "drains,submission,latency,scale,growth,dashboard").split(",")
        )
    )

    def n(self, count, minimum=50):
        """A message count scaled by BENCH_SCALE, never below `minimum`."""
        return max(minimum, int(count * self.scale))

    def seconds(self, value, minimum=1.0):
        return max(minimum, value * self.scale)

    def as_dict(self):
        return asdict(self)
