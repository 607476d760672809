"""One private three-node RabbitMQ cluster for tests/cluster (make test-cluster).

Booting three nodes costs ~15 s, so the cluster is shared by every test here and put
back together (every node running and clustered) before each test; each test gets a
vhost of its own, so no queue, message or replica state leaks from one test to the next.
"""

import secrets

import pytest

from tests.e2e.conftest import start_system, system_env, token  # noqa: F401  (fixtures)
from tests.support.cluster import PrivateCluster


@pytest.fixture(scope="session")
def cluster():
    cluster = PrivateCluster().start()
    print(f"\ncluster of 3 private nodes started in {cluster.started_in:.1f} s")
    yield cluster
    cluster.destroy()


def restore(cluster):
    """Start every node that is not running, and wait until all three are clustered again."""
    stopped = [i for i in range(len(cluster.nodes)) if not cluster.is_running(i)]
    for i in stopped:
        cluster.nodes[i].launch()
    for i in stopped:
        cluster.nodes[i].wait_started()
    cluster.wait_clustered(timeout=60)


@pytest.fixture
def whole_cluster(cluster):
    """The cluster with every node running and clustered (a test before may have stopped some)."""
    restore(cluster)
    return cluster


@pytest.fixture
def cluster_vhost(whole_cluster):
    """A vhost of the test's own; deleted afterwards, once every node is back (deleting a vhost
    whose quorum queues miss a member waits a minute for it)."""
    vhost = f"conveyor-cluster-{secrets.token_hex(3)}"
    whole_cluster.add_vhost(vhost)
    yield vhost
    restore(whole_cluster)
    whole_cluster.rabbitmqctl(None, "delete_vhost", vhost, check=False, timeout=120)


@pytest.fixture
def cluster_env(whole_cluster, cluster_vhost):
    """What the service processes need to use the cluster: every node's URL, quorum queues."""
    return {"BROKER_URL": whole_cluster.broker_url_for(cluster_vhost), "CONVEYOR_QUEUE_TYPE": "quorum"}
