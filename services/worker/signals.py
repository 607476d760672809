"""Make one stop request mean "finish your work", even when it arrives twice.

Dramatiq's worker process treats a second SIGTERM as "kill now". A process manager
that signals the whole process group (honcho in `make dev`, a terminal) delivers
SIGTERM to the worker process twice: once directly, once forwarded by Dramatiq's
main process, which would abort running tasks. Within a short window we count
those as one; a deliberate second SIGTERM later still kills.
"""

import logging
import signal
import time

from dramatiq.middleware import Middleware

from services.worker.orphans import die_with_parent

logger = logging.getLogger(__name__)

DUPLICATE_WINDOW_SECONDS = 2.0


class GracefulStop(Middleware):
    def after_process_boot(self, broker):
        previous = signal.getsignal(signal.SIGTERM)
        if not callable(previous):
            return  # not inside a Dramatiq worker process (e.g. tests)
        die_with_parent(signal.SIGTERM)
        first = []

        def handler(signum, frame):
            now = time.monotonic()
            if first and now - first[0] < DUPLICATE_WINDOW_SECONDS:
                logger.info("Ignoring a duplicate SIGTERM; finishing running tasks first.")
                return
            first[:] = [now]
            previous(signum, frame)

        signal.signal(signal.SIGTERM, handler)
