"""The compose profile `cluster` (three RabbitMQ nodes) and docker-compose.cluster.yml (the
app on them with quorum queues), checked without a Docker engine like the rest of
docker-compose.yml: against the Compose Specification's schema, then for what the schema
cannot see."""

import os
import re
import subprocess
import urllib.parse

import pytest

from tests.deploy import compose
from tests.deploy.compose import ROOT
from tests.deploy.test_compose_file import validator

NODES = ["rabbitmq-1", "rabbitmq-2", "rabbitmq-3"]
CLUSTER_CONF = ROOT / "deploy/rabbitmq/cluster.conf"
# What `docker compose up` started before the profile existed: it still starts exactly these.
DEFAULT_SERVICES = {
    "rabbitmq",
    "postgres",
    "migrate",
    "web",
    "worker",
    "relay",
    "scheduler",
    "prometheus",
    "grafana",
    "mailpit",
}
RUNS_TASKS = ["web", "worker", "relay", "scheduler"]  # connect to RabbitMQ at run time


@pytest.fixture(scope="module")
def override():
    return compose.load(compose.CLUSTER_OVERRIDE_FILE)


@pytest.fixture(scope="module")
def on_cluster(raw, override, generated_env):
    """`-f docker-compose.yml -f docker-compose.cluster.yml` with a generated .env."""
    return compose.interpolate(compose.merge(raw, override), generated_env)


def cluster_conf():
    settings = {}
    for line in CLUSTER_CONF.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings[key.strip()] = value.strip()
    return settings


def mounts(service):
    """{target: (source, read_only)} of a service's short-syntax volumes."""
    found = {}
    for volume in service.get("volumes") or []:
        source, target, *mode = volume.split(":")
        found[target] = (source, mode == ["ro"])
    return found


def test_the_cluster_files_validate_against_the_compose_spec(raw, override, on_cluster):
    # Given the override layered on docker-compose.yml as compose merges them, as written
    # and with a generated .env
    merged = compose.merge(raw, override)
    errors = {
        name: [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator().iter_errors(doc)]
        for name, doc in (("as written", merged), ("with .env", on_cluster))
    }
    # Then neither breaks the schema
    assert errors == {"as written": [], "with .env": []}


def test_the_default_profile_starts_what_it_always_did(raw, generated_env):
    # Given docker-compose.yml alone and no profile (`docker compose up`)
    doc = compose.interpolate(raw, generated_env)
    started = compose.active_services(doc)
    # Then the same services start, the app talks to the single node with classic queues,
    # and nothing waits for a node that does not start
    assert set(started) == DEFAULT_SERVICES
    for name in compose.app_services(doc):
        env = compose.environment(doc["services"][name])
        assert urllib.parse.urlsplit(env["BROKER_URL"]).hostname == "rabbitmq", name
        assert ";" not in env["BROKER_URL"], name
        assert env["CONVEYOR_QUEUE_TYPE"] == "classic", name
        assert urllib.parse.urlsplit(env["RABBITMQ_MANAGEMENT_URL"]).hostname == "rabbitmq", name
    for name, svc in started.items():
        assert set(svc.get("depends_on") or {}) <= set(started), name


def test_the_three_nodes_exist_only_under_the_cluster_profile(raw):
    # Given every service that has a profile
    profiled = {name: svc["profiles"] for name, svc in raw["services"].items() if svc.get("profiles")}
    # Then they are the three nodes, in `cluster` alone, and the profile starts them next to the rest
    assert profiled == {node: ["cluster"] for node in NODES}
    assert set(compose.active_services(raw, ["cluster"])) == DEFAULT_SERVICES | set(NODES)


def test_the_nodes_run_the_single_nodes_image_and_settings_with_stable_names(raw):
    single = raw["services"]["rabbitmq"]
    for node in NODES:
        svc = raw["services"][node]
        # Same image and restart policy, a fixed host name (the node name rabbit@<host>)
        assert svc["image"] == single["image"], node
        assert svc["hostname"] == node, node
        assert svc["restart"] == "unless-stopped", node
        # The single node's rabbitmq.conf and plugins, read-only, plus cluster.conf
        volumes = mounts(svc)
        for target, (source, read_only) in mounts(single).items():
            if target != "/var/lib/rabbitmq":
                assert volumes[target] == (source, read_only), (node, target)
        assert volumes["/etc/rabbitmq/conf.d/30-cluster.conf"] == ("./deploy/rabbitmq/cluster.conf", True), node
        # The same account and vhost as the single node (created on the cluster's first boot)
        env = compose.environment(svc)
        for name in ("RABBITMQ_DEFAULT_USER", "RABBITMQ_DEFAULT_PASS", "RABBITMQ_DEFAULT_VHOST"):
            assert env[name] == compose.environment(single)[name], (node, name)
        # No published port in the profile itself (the single node may hold the same one)
        assert not svc.get("ports"), node
        # They boot side by side: after a full stop each waits for its peers
        assert not set(svc.get("depends_on") or {}) & set(NODES), node


def test_the_nodes_share_the_cookie_from_env(raw, generated_env):
    # Given the compose file as written and with a generated .env
    doc = compose.interpolate(raw, generated_env)
    for node in NODES:
        # Then every node reads the one RABBITMQ_ERLANG_COOKIE of .env
        assert compose.environment(raw["services"][node])["RABBITMQ_ERLANG_COOKIE"] == "${RABBITMQ_ERLANG_COOKIE:-}"
        cookie = compose.environment(doc["services"][node])["RABBITMQ_ERLANG_COOKIE"]
        assert cookie == generated_env["RABBITMQ_ERLANG_COOKIE"], node
    # And `make env` generated one, letters and digits only, committed nowhere
    assert compose.read_env_file(compose.ENV_EXAMPLE)["RABBITMQ_ERLANG_COOKIE"] == ""
    assert re.fullmatch(r"[A-Z0-9]{32,}", generated_env["RABBITMQ_ERLANG_COOKIE"])
    # And the single node does not get it (its own cookie file stays as it was)
    assert "RABBITMQ_ERLANG_COOKIE" not in compose.environment(raw["services"]["rabbitmq"])


def test_an_env_without_a_cookie_still_starts_the_default_but_no_node(raw, generated_env, tmp_path):
    # Given an .env written before the profile existed (no RABBITMQ_ERLANG_COOKIE)
    old_env = {k: v for k, v in generated_env.items() if k != "RABBITMQ_ERLANG_COOKIE"}
    # Then compose still interpolates the file (the default profile starts as before)
    doc = compose.interpolate(raw, old_env)
    command = doc["services"]["rabbitmq-1"]["command"]
    assert command[:2] == ["sh", "-c"]
    # And a node's command refuses to boot without the cookie, and with it hands over to
    # the image's entrypoint (stood in for by a script that records its arguments)
    fake = tmp_path / "docker-entrypoint.sh"
    fake.write_text('#!/bin/sh\necho "entrypoint $*"\n')
    fake.chmod(0o755)
    path = f"{tmp_path}{os.pathsep}{os.environ['PATH']}"

    def run(cookie):
        env = {"PATH": path, "RABBITMQ_ERLANG_COOKIE": cookie}
        return subprocess.run(command, env=env, capture_output=True, text=True)

    refused = run("")
    assert refused.returncode == 78 and "RABBITMQ_ERLANG_COOKIE is empty" in refused.stderr
    started = run("C0")
    assert (started.returncode, started.stdout) == (0, "entrypoint rabbitmq-server\n")


def test_each_node_mounts_a_cluster_config_that_names_all_three(raw):
    settings = cluster_conf()
    # Peer discovery by the classic config, listing rabbit@<hostname> of every node
    assert settings["cluster_formation.peer_discovery_backend"] == "classic_config"
    listed = {value for key, value in settings.items() if key.startswith("cluster_formation.classic_config.nodes.")}
    assert listed == {f"rabbit@{raw['services'][node]['hostname']}" for node in NODES}
    # Queues declared without a type are replicated (a setting RabbitMQ 3.13.3+ and 4.x know)
    assert settings["default_queue_type"] == "quorum"
    assert settings["cluster_partition_handling"] == "pause_minority"


def test_each_node_has_a_healthcheck_and_a_data_volume_of_its_own(raw):
    single = raw["services"]["rabbitmq"]
    data = []
    for node in NODES:
        svc = raw["services"][node]
        assert svc["healthcheck"] == single["healthcheck"], node
        source, _ = mounts(svc)["/var/lib/rabbitmq"]
        assert source in raw["volumes"], f"{node}: {source} is not a named volume"
        data.append(source)
    assert len(set(data)) == 3 and mounts(single)["/var/lib/rabbitmq"][0] not in data


def test_on_the_cluster_every_client_knows_all_three_nodes_and_uses_quorum_queues(on_cluster, generated_env):
    for name in compose.app_services(on_cluster):
        env = compose.environment(on_cluster["services"][name])
        # BROKER_URL: one amqp URL per node, Dramatiq's `;` list, same account and vhost
        urls = [urllib.parse.urlsplit(url) for url in env["BROKER_URL"].split(";")]
        assert [u.hostname for u in urls] == NODES, name
        for url in urls:
            assert (url.scheme, url.port, url.path) == ("amqp", 5672, f"/{generated_env['RABBITMQ_VHOST']}"), name
            assert (url.username, url.password) == (generated_env["RABBITMQ_USER"], generated_env["RABBITMQ_PASSWORD"])
        assert env["CONVEYOR_QUEUE_TYPE"] == "quorum", name
        assert urllib.parse.urlsplit(env["RABBITMQ_MANAGEMENT_URL"]).hostname in NODES, name


def test_on_the_cluster_the_single_node_stays_down_and_the_app_waits_for_the_three(on_cluster):
    started = compose.active_services(on_cluster, ["cluster"])
    # The single node is not started, its management port goes to rabbitmq-1
    assert "rabbitmq" not in started
    assert set(NODES) <= set(started)
    assert on_cluster["services"]["rabbitmq-1"]["ports"] == on_cluster["services"]["rabbitmq"]["ports"]
    # Nothing started depends on a service that is not (compose would refuse to start)
    for name, svc in started.items():
        assert set(svc.get("depends_on") or {}) <= set(started), name
    # The app waits for every node to be healthy, and still for the migration and postgres
    for name in RUNS_TASKS:
        depends = started[name]["depends_on"]
        assert {node: depends[node]["condition"] for node in NODES} == dict.fromkeys(NODES, "service_healthy"), name
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["postgres"]["condition"] == "service_healthy", name


def test_the_override_only_rewires_the_broker(raw, override):
    # What docker-compose.cluster.yml may touch: the app's broker settings and broker
    # dependencies, the single node's profile and rabbitmq-1's port. Everything else
    # (commands, healthchecks, grace periods, other settings) stays docker-compose.yml's.
    allowed_env = {"BROKER_URL", "RABBITMQ_MANAGEMENT_URL", "CONVEYOR_QUEUE_TYPE"}
    for name, svc in override["services"].items():
        if name in compose.app_services(raw):
            assert set(svc) <= {"environment", "depends_on"}, name
            assert set(svc["environment"]) <= allowed_env, name
        else:
            assert name in {"rabbitmq", *NODES}, name
    assert set(override["services"]["rabbitmq"]) == {"profiles"}
    assert set(override["services"]["rabbitmq-1"]) == {"ports"}


def test_the_merge_helper_follows_compose_rules():
    # The checks above trust compose.merge: mappings merge, sequences add, !override replaces
    base = {"a": {"x": 1, "y": [1]}, "d": {"k": 1}}
    over = {"a": {"y": [1, 2], "z": 3}, "d": compose.Override({"j": 2})}
    assert compose.merge(base, over) == {"a": {"x": 1, "y": [1, 2], "z": 3}, "d": {"j": 2}}


def test_the_override_interpolates_only_variables_env_example_offers(raw, override):
    # Every ${...} of the override is a line of .env.example, like docker-compose.yml's
    used = compose.variables_used(compose.merge({}, override))
    assert sorted(used - compose.read_env_file(compose.ENV_EXAMPLE).keys()) == []
    assert used <= compose.variables_used(raw)
