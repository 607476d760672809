"""Waiting for a task or a workflow to finish without a busy loop: the database is read
again after a short pause that grows (10 ms up to 200 ms), so a result is seen soon after
it is committed and a long wait costs a few queries a second."""

import time
from collections.abc import Callable

FIRST_PAUSE, LONGEST_PAUSE = 0.01, 0.2


def poll_until(done: Callable[[], bool], timeout: float) -> bool:
    """Call `done` until it is true (True) or `timeout` seconds have passed (False)."""
    deadline = time.monotonic() + timeout
    pause = FIRST_PAUSE
    while True:
        if done():
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(pause, left))
        pause = min(pause * 2, LONGEST_PAUSE)
