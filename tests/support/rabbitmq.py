"""RabbitMQ helpers for tests: vhosts on the shared server, and private nodes to break."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from tests.support.ports import free_port


def rabbitmqctl(*args, node=None, check=True, timeout=60, cookie=None, tool="rabbitmqctl"):
    """Run a RabbitMQ CLI tool (rabbitmqctl, rabbitmq-queues, rabbitmq-diagnostics) as root.

    Debian's wrappers run the tool as the rabbitmq user with HOME=/var/lib/rabbitmq, so a
    node with a cookie of its own is reached with `--erlang-cookie` (`cookie`), not a HOME.
    """
    cmd = [tool, "-q"]
    if node:
        cmd += ["-n", node]
    if cookie:
        cmd += ["--erlang-cookie", cookie]
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


def _alive(pid):
    """Whether a process runs (a zombie of ours counts as gone)."""
    if pid is None:
        return False
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class PrivateNode:
    """A RabbitMQ node of our own (own name, ports and folders) that a test may stop.

    Debian's rabbitmq-server started as root switches to the rabbitmq user, so its
    folders must belong to rabbitmq.
    """

    def __init__(self, name=None, cookie=None, config="", advanced_config=None):
        """`name` (default conveyor-test-<suffix>@localhost); `cookie`: an Erlang cookie of
        its own (default: the machine's, /var/lib/rabbitmq/.erlang.cookie); `config`: the
        text of its rabbitmq.conf, which may name {port}, {dist_port} and {name};
        `advanced_config`: Erlang terms for settings rabbitmq.conf lacks, e.g.
        "[{rabbit, [{dead_letter_worker_publisher_confirm_timeout, 5000}]}]."."""
        suffix = f"{os.getpid()}{int(time.time() * 1000) % 100000}"
        self.name = name or f"conveyor-test-{suffix}@localhost"
        self.cookie = cookie
        self.port = free_port()
        self.dist_port = free_port()
        self.base = tempfile.mkdtemp(prefix="conveyor-rabbit-")
        plugins = os.path.join(self.base, "enabled_plugins")
        with open(plugins, "w") as handle:
            handle.write("[].\n")
        config_file = os.path.join(self.base, "rabbitmq.conf")
        with open(config_file, "w") as handle:
            handle.write(config.format(port=self.port, dist_port=self.dist_port, name=self.name))
        os.makedirs(os.path.join(self.base, "mnesia"))
        os.makedirs(os.path.join(self.base, "log"))
        shutil.chown(self.base, "rabbitmq", "rabbitmq")
        for sub in ("mnesia", "log", "enabled_plugins", "rabbitmq.conf"):
            shutil.chown(os.path.join(self.base, sub), "rabbitmq", "rabbitmq")
        self.env = {
            **os.environ,
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": os.path.join(self.base, "mnesia"),
            "RABBITMQ_LOG_BASE": os.path.join(self.base, "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": plugins,
            "RABBITMQ_PID_FILE": os.path.join(self.base, "mnesia", "rabbitmq.pid"),
            "RABBITMQ_CONFIG_FILE": config_file,  # empty unless `config`: defaults
        }
        if advanced_config:
            advanced = os.path.join(self.base, "advanced.config")
            with open(advanced, "w") as handle:
                handle.write(advanced_config)
            shutil.chown(advanced, "rabbitmq", "rabbitmq")
            self.env["RABBITMQ_ADVANCED_CONFIG_FILE"] = advanced
        if cookie:
            # The server takes its cookie as an Erlang flag (3.10 also still reads the
            # deprecated RABBITMQ_ERLANG_COOKIE); su resets HOME, so no .erlang.cookie of ours.
            self.env["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"] = f"-setcookie {cookie}"

    @property
    def url(self):
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def ctl(self, *args, check=True, timeout=60, tool="rabbitmqctl"):
        """A CLI command against this node (its cookie included)."""
        return rabbitmqctl(*args, node=self.name, cookie=self.cookie, check=check, timeout=timeout, tool=tool)

    def os_pid(self):
        """The running beam.smp of this node, from the pid file it wrote at boot; None if none."""
        try:
            with open(self.env["RABBITMQ_PID_FILE"]) as handle:
                pid = int(handle.read().strip())
            # Only ever this node's own Erlang VM, never a recycled pid.
            with open(f"/proc/{pid}/environ", "rb") as handle:
                environ = handle.read().split(b"\0")
        except (OSError, ValueError):
            return None
        return pid if f"RABBITMQ_NODENAME={self.name}".encode() in environ else None

    def launch(self):
        """Start the server in the background; `wait_started` waits for it to boot."""
        subprocess.run(["rabbitmq-server", "-detached"], env=self.env, check=True, capture_output=True)
        return self

    def wait_started(self, timeout=120):
        # The AMQP listener opens last in the boot: wait for it with a socket (each CLI
        # call costs a second of CPU, which slows nodes booting side by side), then confirm.
        deadline = time.monotonic() + timeout
        while not self.is_listening() and time.monotonic() < deadline:
            time.sleep(0.1)
        while True:
            result = self.ctl("await_startup", "--timeout", "30", check=False, timeout=60)
            if result.returncode == 0:
                return self
            if time.monotonic() > deadline:
                raise RuntimeError(f"private RabbitMQ {self.name} did not start: {result.stderr[-500:]}")
            time.sleep(0.5)

    def start(self, timeout=120):
        return self.launch().wait_started(timeout)

    def stop(self):
        """Stop cleanly, and wait until the Erlang process is gone (a restart reuses its name)."""
        pid = self.os_pid()
        self.ctl("stop", check=False, timeout=120)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (self.is_listening() or _alive(pid)):
            time.sleep(0.2)

    def kill(self):
        """SIGKILL the node's beam.smp: a crash, no goodbye to clients or peers."""
        pid = self.os_pid()
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)

    def is_listening(self):
        with socket.socket() as s:
            s.settimeout(0.5)
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def destroy(self):
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)
