"""Fixtures shared by every test. Given/When/Then reads in each test's docstring or body."""

import os
import shutil

import dramatiq
import pytest
from django.conf import settings
from django_dramatiq.utils import load_middleware

from services.worker.broker import StubBroker
from tests.support import rabbitmq


def pytest_sessionstart(session):
    # The vhost must exist before anything connects (connections are lazy).
    if shutil.which("rabbitmqctl"):
        try:
            rabbitmq.create_vhost(os.environ["CONVEYOR_TEST_VHOST"])
        except Exception as exc:  # an integration test then fails with a clear error
            print(f"could not create RabbitMQ vhost: {exc}")


def pytest_sessionfinish(session, exitstatus):
    # Close this process's publisher connection while its vhost still exists; closing it
    # at exit, after the vhost is gone, makes pika log a reset connection.
    from conveyor.publisher import publisher

    publisher.stop()
    if shutil.which("rabbitmqctl"):
        rabbitmq.delete_vhost(os.environ["CONVEYOR_TEST_VHOST"])


@pytest.fixture
def stub_broker():
    """A StubBroker with Conveyor's middleware and every catalog actor (unit tests only)."""
    from conveyor import catalog

    previous = dramatiq.get_broker()
    # Dramatiq's Prometheus middleware points PROMETHEUS_MULTIPROC_DIR at its folder on
    # process_boot; keep that out of later tests and of the processes they start.
    saved_env = {k: os.environ.get(k) for k in ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir")}
    broker = StubBroker(middleware=[load_middleware(path) for path in settings.DRAMATIQ_BROKER["MIDDLEWARE"]])
    broker.emit_after("process_boot")
    dramatiq.set_broker(broker)
    catalog.declare_actors(broker)
    yield broker
    broker.flush_all()
    broker.close()
    dramatiq.set_broker(previous)
    for key, value in saved_env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def stub_worker(stub_broker):
    worker = dramatiq.Worker(stub_broker, worker_timeout=50, worker_threads=2)
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture
def make_token(db):
    from conveyor import tokens

    def make(scopes=("read", "write"), name="test"):
        token, secret = tokens.create(name, list(scopes))
        return token, secret

    return make


@pytest.fixture
def api(client, make_token):
    """A Django test client that sends a write-scoped bearer token."""
    token, secret = make_token(("read", "write"))
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    client.token = token
    return client


def publish_pending_outbox():
    """In unit tests on_commit never fires inside the test transaction: publish by hand."""
    from conveyor import outbox
    from conveyor.publisher import publisher

    publisher.flush()
    return outbox.deliver(outbox.claim_due())
