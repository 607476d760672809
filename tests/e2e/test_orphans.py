"""A worker whose Dramatiq main process is killed leaves no orphans behind (services/worker/orphans.py)."""

import os
import signal
import socket

import pytest

from tests.support.processes import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def port_open(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_killing_the_main_process_ends_its_worker_and_metrics_processes(start_system):
    # Given a worker service: Dramatiq's main process, its worker process and its metrics process
    system = start_system(workers=1, web=False, relay=False)
    worker = system.workers[0]
    children = worker.children()
    assert len(children) >= 2, children
    wait_for(lambda: port_open(worker.metrics_port), 30, "the metrics port")
    # When the main process is killed outright (the OOM killer, kill -9)
    os.kill(worker.proc.pid, signal.SIGKILL)
    worker.proc.wait(timeout=10)
    # Then its worker and metrics processes stop by themselves instead of living on as
    # orphans that consume messages and hold the metrics port beside a replacement
    wait_for(lambda: not worker.children(), 60, "the orphaned processes to exit")
    assert not port_open(worker.metrics_port)
