"""Fire lag of a schedule, from the database: how late after its due time each task was enqueued.

    DATABASE_URL=... python -m services.scheduler.fire_lag SCHEDULE [--skip-first N]

Lag = TaskRecord.enqueued_at (set inside the fire transaction) - fire_time, for fires
of computed fire times (not "run now"). --skip-first leaves out the first N fires, e.g.
the catch-up of fire times that fell due before the scheduler started. The live view is
the conveyor_scheduler_fire_lag_seconds histogram.
"""

import argparse
import os
import statistics


def lag_seconds(schedule_name, skip_first=0):
    # Late: main() calls django.setup() first (the tests have Django set up already).
    from conveyor.scheduling.models import Fire, FireOutcome

    fires = (
        Fire.objects.filter(schedule__name=schedule_name, outcome=FireOutcome.ENQUEUED, manual=False)
        .select_related("task")
        .order_by("fire_time")
    )
    lags = [(f.task.enqueued_at - f.fire_time).total_seconds() for f in fires if f.task is not None]
    return lags[skip_first:]


def summary(lags):
    if not lags:
        return "no fires"
    ordered = sorted(lags)

    def pick(q):
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return (
        f"n={len(lags)} p50={statistics.median(lags) * 1000:.1f}ms p99={pick(0.99) * 1000:.1f}ms "
        f"max={ordered[-1] * 1000:.1f}ms"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("schedule")
    parser.add_argument("--skip-first", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    print(summary(lag_seconds(args.schedule, args.skip_first)))


if __name__ == "__main__":
    main()
