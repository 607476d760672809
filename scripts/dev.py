"""`make dev`: run Procfile.dev with honcho, giving processes time to stop gracefully.

honcho SIGKILLs whatever has not exited 5 s after Ctrl-C; a worker finishing a task
needs up to CONVEYOR_WORKER_SHUTDOWN_TIMEOUT_SECONDS, so we wait that long instead.
"""

import os
import sys

from honcho import command, manager

manager.KILL_WAIT = int(os.environ.get("CONVEYOR_WORKER_SHUTDOWN_TIMEOUT_SECONDS", "60")) + 5

if __name__ == "__main__":
    workers = os.environ.get("WORKERS", "2")
    # -e /dev/null: never read a compose .env (its host names are containers' names).
    sys.exit(command.main(["start", "-f", "Procfile.dev", "-e", "/dev/null", "-c", f"worker={workers}", *sys.argv[1:]]))
