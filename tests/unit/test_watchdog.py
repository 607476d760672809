"""The hard time limit's bookkeeping: a run past its limit plus the grace is stuck, and then the
worker's healthcheck stops passing."""

import threading
import time
from types import SimpleNamespace

from services.worker.heartbeat import healthy
from services.worker.watchdog import HardTimeLimit


def message(time_limit_ms):
    return SimpleNamespace(
        _conveyor_started=SimpleNamespace(attempts=1),
        options={"time_limit": time_limit_ms},
        actor_name="demo.tasks.sleep",
        message_id="m",
    )


def test_a_run_past_its_time_limit_and_the_grace_is_stuck_and_makes_the_worker_unhealthy(settings):
    settings.CONVEYOR_HARD_TIME_LIMIT_GRACE_SECONDS = 0.05
    watchdog = HardTimeLimit()
    broker = SimpleNamespace(middleware=[watchdog])
    alive = threading.Thread(target=time.sleep, args=(2,), daemon=True)
    alive.start()
    worker = SimpleNamespace(consumers={}, workers=[alive])
    # Given a run with a 50 ms time limit
    slow = message(50)
    watchdog.before_process_message(broker, slow)
    # Then it is not stuck at first, and the worker is healthy
    assert watchdog.stuck() == [] and healthy(broker, worker)
    # When its limit and the grace have passed
    time.sleep(0.15)
    # Then it is stuck, and the healthcheck stops passing
    assert watchdog.stuck() == [slow] and not healthy(broker, worker)
    # And once the run ends, nothing is stuck
    watchdog.after_process_message(broker, slow)
    assert watchdog.stuck() == [] and healthy(broker, worker)
