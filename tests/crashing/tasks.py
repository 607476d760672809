import os
import time

from django.tasks import task


@task(max_retries=0)
def exit_worker(code: int = 1) -> None:
    """Kill the worker process running this task at once, as a segfault or the OOM killer would."""
    os._exit(code)


@task(time_limit=1, max_retries=0)
def hang(seconds: float = 3600) -> None:
    """Block in a C call (time.sleep) far past its 1 s time limit, where Dramatiq cannot interrupt it."""
    time.sleep(seconds)


@task(max_retries=0, http="admin")
def record_then_die(marker: str, value: int = 1) -> int:
    """Append a line to `marker` (the side effect), then, on its first run only, SIGKILL its own
    worker process before the end can be recorded: the task is run again elsewhere."""
    with open(marker, "a") as f:
        f.write(f"{os.getpid()}\n")
    with open(marker) as f:
        first_run = len(f.readlines()) == 1
    if first_run:
        os.kill(os.getpid(), 9)
    return value
