"""A RabbitMQ cluster of our own: three private nodes on this machine, to break one node at a time.

Each node is a `PrivateNode` (own node name, AMQP port, distribution port, data and log
folders) and they share an Erlang cookie generated for this cluster alone, so they can
reach each other and nothing else can reach them, not even the shared server on 5672.
They form the cluster at first boot by peer discovery from the classic config (the
same way the compose profile does): every node's rabbitmq.conf names all three.

    cluster = PrivateCluster().start()          # 10-14 s: three nodes boot in parallel
    cluster.add_vhost("conveyor-x")
    env = {"BROKER_URL": cluster.broker_url_for("conveyor-x")}   # "amqp://...;amqp://...;..."
    leader = cluster.leader("default", vhost="conveyor-x")       # index of the leading node
    cluster.kill_node(leader)                   # SIGKILL its beam.smp
    cluster.restart_node(leader)                # it rejoins with its data
    cluster.destroy()

The CLI tools need the cookie too: use `cluster.rabbitmqctl(i, ...)`, which passes
`--erlang-cookie` (Debian's wrappers run the tools as rabbitmq with HOME=/var/lib/rabbitmq,
so a .erlang.cookie of ours in another HOME would not be read).
"""

import json
import os
import secrets
import shutil
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

from tests.support.rabbitmq import PrivateNode

# Booting side by side, the nodes take a lock in turn: the first finds no peer running
# and, after discovery_retry_limit tries, starts a new cluster; the others then join it.
# Two tries instead of ten save four seconds.
CLASSIC_CONFIG = """\
cluster_formation.peer_discovery_backend = classic_config
cluster_formation.discovery_retry_limit = 2
cluster_formation.discovery_retry_interval = 500
{nodes}
"""


class PrivateCluster:
    """`size` private RabbitMQ nodes clustered together (indices 0..size-1)."""

    def __init__(self, size=3, formation="classic_config", extra_config="", advanced_config=None):
        """`formation`: "classic_config" (peer discovery at first boot) or "join" (each
        node boots alone, then the others `join_cluster` the first). `extra_config`: more
        rabbitmq.conf lines for every node, e.g. "cluster_partition_handling = pause_minority".
        `advanced_config`: advanced.config terms for every node (see PrivateNode)."""
        if formation not in ("classic_config", "join"):
            raise ValueError(f"unknown formation {formation!r}")
        self.formation = formation
        self.suffix = f"{os.getpid()}-{secrets.token_hex(3)}"
        self.cookie = secrets.token_hex(20).upper()
        names = [f"conveyor-c{i + 1}-{self.suffix}@localhost" for i in range(size)]
        config = extra_config.strip() + "\n"
        if formation == "classic_config":
            nodes = "\n".join(
                f"cluster_formation.classic_config.nodes.{i + 1} = {name}" for i, name in enumerate(names)
            )
            config = CLASSIC_CONFIG.format(nodes=nodes) + config
        self.nodes = [
            PrivateNode(name=name, cookie=self.cookie, config=config, advanced_config=advanced_config) for name in names
        ]
        self.started_in = None  # seconds start() took

    # --- addresses -------------------------------------------------------------------

    @property
    def names(self):
        return [node.name for node in self.nodes]

    def url(self, i, vhost="/"):
        return f"amqp://guest:guest@127.0.0.1:{self.nodes[i].port}/{urllib.parse.quote(vhost, safe='')}"

    @property
    def urls(self):
        return [self.url(i) for i in range(len(self.nodes))]

    def urls_for(self, vhost):
        return [self.url(i, vhost) for i in range(len(self.nodes))]

    @property
    def broker_url(self):
        """Every node's URL joined with ';' (Dramatiq's and Conveyor's convention for several nodes)."""
        return ";".join(self.urls)

    def broker_url_for(self, vhost):
        return ";".join(self.urls_for(vhost))

    def index(self, node_name):
        return self.names.index(node_name)

    # --- life cycle --------------------------------------------------------------------

    def start(self, timeout=180):
        began = time.monotonic()
        # Boot all nodes at once: with the classic config, peers found at boot are joined;
        # a node that finds none running waits for them (retries below), so parallel is safe.
        for node in self.nodes:
            node.launch()
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(lambda node: node.wait_started(timeout), self.nodes))
        if self.formation == "join":
            first = self.nodes[0].name
            with ThreadPoolExecutor(len(self.nodes)) as pool:
                list(pool.map(lambda i: self._join(i, first), range(1, len(self.nodes))))
        try:
            self.wait_clustered(timeout=30)
        except RuntimeError:
            if self.formation != "classic_config":
                raise
            # A node booted alone (the race the discovery lock should prevent): join it.
            for i in range(1, len(self.nodes)):
                if self.names[0] not in self.running_nodes(i):
                    self._join(i, self.names[0])
            self.wait_clustered(timeout=max(10, timeout - (time.monotonic() - began)))
        self.started_in = time.monotonic() - began
        return self

    def _join(self, i, first):
        self.rabbitmqctl(i, "stop_app")
        self.rabbitmqctl(i, "join_cluster", first, timeout=120)
        self.rabbitmqctl(i, "start_app", timeout=120)

    def wait_clustered(self, timeout=60, expected=None):
        """Wait until every running node sees `expected` (default: all) nodes running."""
        expected = set(expected or self.names)
        deadline = time.monotonic() + timeout
        while True:
            seen = [self.running_nodes(i) for i in range(len(self.nodes)) if self.nodes[i].name in expected]
            if all(set(running) == expected for running in seen):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"cluster did not form: expected {sorted(expected)}, nodes see {seen}")
            time.sleep(0.5)

    def running_nodes(self, i):
        """Node names that node i sees running in its cluster ([] if i does not answer)."""
        result = self.rabbitmqctl(i, "eval", "rabbit_nodes:all_running().", check=False, timeout=30)
        if result.returncode != 0:
            return []
        return [name.strip(" '\n") for name in result.stdout.strip().strip("[]").split(",") if name.strip()]

    def cluster_status(self, i):
        return self.rabbitmqctl(i, "cluster_status", check=False).stdout

    def stop_node(self, i):
        """A clean stop (the node leaves the running set; its data stays for restart)."""
        self.nodes[i].stop()

    def kill_node(self, i):
        """SIGKILL node i's beam.smp (a crash: no goodbye to clients or peers)."""
        self.nodes[i].kill()

    def start_node(self, i, timeout=120):
        """Boot a stopped or killed node again; it rejoins the cluster from its own data."""
        self.nodes[i].start(timeout)
        return self

    def restart_node(self, i, timeout=120):
        if self.nodes[i].os_pid() is not None:
            self.stop_node(i)
        return self.start_node(i, timeout)

    def is_running(self, i):
        return self.nodes[i].os_pid() is not None

    def running(self):
        """Indices of the nodes whose Erlang VM runs."""
        return [i for i in range(len(self.nodes)) if self.is_running(i)]

    def destroy(self):
        """Stop every node (SIGKILL: the folders go anyway) and remove their folders."""
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(lambda node: node.kill(), self.nodes))
        for node in self.nodes:
            shutil.rmtree(node.base, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.destroy()

    # --- CLI -------------------------------------------------------------------------

    def _any_running(self, i):
        if i is not None:
            return i
        running = self.running()
        if not running:
            raise RuntimeError("no node of the cluster runs")
        return running[0]

    def rabbitmqctl(self, i, *args, check=True, timeout=60, tool="rabbitmqctl"):
        """A CLI command against node i (None: any running node), with the cluster's cookie."""
        return self.nodes[self._any_running(i)].ctl(*args, check=check, timeout=timeout, tool=tool)

    def add_vhost(self, vhost):
        self.rabbitmqctl(None, "add_vhost", vhost)
        self.rabbitmqctl(None, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")

    def quorum_status(self, queue, vhost="/", node=None):
        """`rabbitmq-queues quorum_status`: one dict per member (Node Name, Raft State, ...)."""
        out = self.rabbitmqctl(
            node, "quorum_status", queue, "--vhost", vhost, "--formatter", "json", tool="rabbitmq-queues"
        ).stdout
        return json.loads(out)

    def queues(self, vhost="/", node=None):
        """Every queue of `vhost` as {name: {type, leader, members, online, messages}}, from any running node.

        3.10's list_queues reports leader/members/online for quorum queues. Without a
        majority `leader` may still name the last node that led (it cannot commit): judge
        availability by len(online) > len(members) // 2. `messages` lags a few seconds."""
        out = self.rabbitmqctl(
            node,
            "list_queues",
            "-p",
            vhost,
            "name",
            "type",
            "leader",
            "members",
            "online",
            "messages",
            "--formatter",
            "json",
        ).stdout
        return {row["name"]: row for row in json.loads(out)}

    def leader(self, queue, vhost="/", node=None):
        """Index of the node leading quorum queue `queue`, None if it has none right now."""
        row = self.queues(vhost, node).get(queue)
        if not row or not row.get("leader") or row["leader"] not in self.names:
            return None
        return self.index(row["leader"])

    def wait_leader(self, queue, vhost="/", timeout=60, other_than=None, node=None):
        """Wait until `queue` has a leader (other than node `other_than`); returns its index."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                leader = self.leader(queue, vhost, node)
            except Exception:  # the asked node is busy or just died
                leader = None
            if leader is not None and leader != other_than and self.is_running(leader):
                return leader
            if time.monotonic() > deadline:
                raise RuntimeError(f"no leader for {queue!r} within {timeout}s")
            time.sleep(0.1)

    def wait_members_online(self, queue, vhost="/", timeout=60, count=None):
        """Wait until all (or `count`) members of quorum queue `queue` are online."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                row = self.queues(vhost).get(queue) or {}
            except Exception:
                row = {}
            members, online = row.get("members") or [], row.get("online") or []
            if members and len(online) >= (count or len(members)):
                return row
            if time.monotonic() > deadline:
                raise RuntimeError(f"{queue!r} members not back online within {timeout}s: {row}")
            time.sleep(0.2)
