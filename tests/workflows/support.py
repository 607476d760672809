"""Running workflows on the StubBroker: publish what the outbox holds, let the stub worker run it, repeat."""

import time

from conveyor.workflows import handle
from tests.conftest import publish_pending_outbox


def run_until_finished(stub_broker, stub_worker, workflow_id, timeout=30.0):
    """Drive a workflow to its end (each step's next steps are written to the outbox as it ends)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        publish_pending_outbox()
        for queue in list(stub_broker.queues):
            stub_broker.join(queue, fail_fast=False)
        stub_worker.join()
        result = handle.get(workflow_id)
        if result.is_finished:
            return result
        time.sleep(0.02)
    raise AssertionError(f"workflow {workflow_id} did not finish: {handle.get(workflow_id)}")
