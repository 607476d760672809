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
