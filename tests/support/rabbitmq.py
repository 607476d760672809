"""RabbitMQ helpers for tests: vhosts on the shared server, and private nodes to break."""

import os
import shutil
import socket
import subprocess
import tempfile
import time

from tests.support.ports import free_port


def rabbitmqctl(*args, node=None, check=True, timeout=60):
    cmd = ["rabbitmqctl", "-q"]
    if node:
        cmd += ["-n", node]
    return subprocess.run([*cmd, *args], check=check, capture_output=True, text=True, timeout=timeout)


def create_vhost(name):
    rabbitmqctl("add_vhost", name)
    rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")


def delete_vhost(name):
    rabbitmqctl("delete_vhost", name, check=False)


def purge_queues(*queues, url=None):
    """Empty queues on the broker (BROKER_URL unless `url`); one not declared yet is empty already."""
    import pika
    from django.conf import settings

    for queue in queues:
        connection = pika.BlockingConnection(pika.URLParameters(url or settings.BROKER_URL))
        try:
            connection.channel().queue_purge(queue)
        except pika.exceptions.ChannelClosedByBroker:  # 404 NOT_FOUND
            pass
        finally:
            connection.close()


class PrivateNode:
    """A RabbitMQ node of our own (own name, ports and folders) that a test may stop.

    Debian's rabbitmq-server started as root switches to the rabbitmq user, so its
    folders must belong to rabbitmq.
    """

    def __init__(self):
        suffix = f"{os.getpid()}{int(time.time() * 1000) % 100000}"
        self.name = f"conveyor-test-{suffix}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self.base = tempfile.mkdtemp(prefix="conveyor-rabbit-")
        plugins = os.path.join(self.base, "enabled_plugins")
        with open(plugins, "w") as handle:
            handle.write("[].\n")
        os.makedirs(os.path.join(self.base, "mnesia"))
        os.makedirs(os.path.join(self.base, "log"))
        shutil.chown(self.base, "rabbitmq", "rabbitmq")
        for sub in ("mnesia", "log", "enabled_plugins"):
            shutil.chown(os.path.join(self.base, sub), "rabbitmq", "rabbitmq")
        self.env = {
            **os.environ,
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": os.path.join(self.base, "mnesia"),
            "RABBITMQ_LOG_BASE": os.path.join(self.base, "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": plugins,
            "RABBITMQ_CONFIG_FILE": os.path.join(self.base, "rabbitmq"),  # none: defaults
        }

    @property
    def url(self):
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def start(self, timeout=120):
        subprocess.run(["rabbitmq-server", "-detached"], env=self.env, check=True, capture_output=True)
        # await_startup fails at once while the Erlang node is not yet registered: poll.
        deadline = time.monotonic() + timeout
        while True:
            result = rabbitmqctl("await_startup", "--timeout", "30", node=self.name, check=False, timeout=60)
            if result.returncode == 0:
                return self
            if time.monotonic() > deadline:
                raise RuntimeError(f"private RabbitMQ {self.name} did not start: {result.stderr[-500:]}")
            time.sleep(1)

    def stop(self):
        rabbitmqctl("stop", node=self.name, check=False, timeout=120)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.is_listening():
            time.sleep(0.2)

    def is_listening(self):
        with socket.socket() as s:
            s.settimeout(0.5)
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def destroy(self):
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)
