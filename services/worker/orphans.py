"""A worker's processes end with the Dramatiq main process that started them.

Dramatiq's main process stops its worker and fork processes when it is asked to, but if
it is killed (SIGKILL, the OOM killer) they live on as orphans: still consuming, still
holding the metrics port, with nobody reading their logs, beside the replacement that
`make dev` (scripts/respawn.sh) or a process manager starts. Linux can send a process a
signal when its parent dies (prctl PR_SET_PDEATHSIG); SIGTERM makes it a graceful stop,
so the tasks it runs finish and are recorded first. In a container the main process is
PID 1 and its death ends the container anyway; this is for processes on a host.
"""

import ctypes
import logging
import os
import signal
import sys

logger = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1


def die_with_parent(sig: signal.Signals = signal.SIGTERM) -> bool:
    """Ask the kernel for `sig` when this process's parent dies; whether it was set up."""
    if not sys.platform.startswith("linux"):
        return False
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        logger.warning("prctl(PR_SET_PDEATHSIG) failed: %s", os.strerror(ctypes.get_errno()))
        return False
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), sig)
    return True
