"""deploy/k8s/rabbitmq: the RabbitMQ Cluster Operator's RabbitmqCluster (the scaled path of
SCALING.md), built with kustomize and validated offline.

kubernetes-validate has no schema for custom resources: the RabbitmqCluster is checked
against a trimmed copy of the operator CRD's openAPIV3Schema in
tests/deploy/schemas/rabbitmqcluster-v1beta1.json (its $comment says where it comes from
and what was left out); the PodDisruptionBudget against Kubernetes' own schema.
"""

import json

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.deploy import compose
from tests.deploy.compose import ROOT
from tests.deploy.test_kubernetes import KUBERNETES_VERSION, kustomize_build

FOLDER = ROOT / "deploy/k8s/rabbitmq"
SCHEMA = ROOT / "tests/deploy/schemas/rabbitmqcluster-v1beta1.json"
SCALING = ROOT / "deploy/k8s/SCALING.md"


@pytest.fixture(scope="module")
def resources():
    return kustomize_build(FOLDER)


@pytest.fixture(scope="module")
def cluster(resources):
    (found,) = [r for r in resources if r["kind"] == "RabbitmqCluster"]
    return found


def validator():
    return jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))


def additional_config(cluster):
    settings = {}
    for line in cluster["spec"]["rabbitmq"]["additionalConfig"].splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings[key.strip()] = value.strip()
    return settings


def test_the_rabbitmq_cluster_validates_against_the_operators_crd_schema(resources, cluster):
    # Given the folder built by kustomize
    assert cluster["apiVersion"] == "rabbitmq.com/v1beta1"
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator().iter_errors(cluster)]
    # Then the RabbitmqCluster fits the CRD's schema, and the rest Kubernetes' own
    assert errors == []
    for resource in resources:
        if resource["kind"] != "RabbitmqCluster":
            kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize(
    "path, value",
    [
        (["spec", "replica"], 3),  # misspelt
        (["spec", "rabbitmq", "additionalConfig"], "x = y\n" * 400),  # over the CRD's 2000 characters
        (["spec", "persistence", "storage"], "20 gigs"),  # not a quantity
        (["spec", "affinity", "podAntiAffinity", "requiredDuringSchedulingIgnoredDuringExecution"], [{}]),
    ],
)
def test_the_crd_schema_catches_mistakes(cluster, path, value):
    # Given the cluster with one mistake a human makes
    broken = json.loads(json.dumps(cluster))
    node = broken
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    # Then the schema refuses it (the check above is not vacuous)
    assert list(validator().iter_errors(broken))


def test_three_replicas_quorum_by_default_resources_and_persistence(cluster):
    spec = cluster["spec"]
    # An odd number, three or more: quorum queues keep a majority with one node lost
    assert spec["replicas"] >= 3 and spec["replicas"] % 2 == 1
    # The RabbitMQ version compose runs (and so the settings below exist there)
    assert spec["image"] == compose.load()["services"]["rabbitmq"]["image"]
    settings = additional_config(cluster)
    assert settings["default_queue_type"] == "quorum"
    assert int(settings["consumer_timeout"]) >= 30 * 60 * 1000
    # Requests and a memory limit (RabbitMQ's memory alarm follows it), a volume per node
    assert {"cpu", "memory"} <= spec["resources"]["requests"].keys()
    assert spec["resources"]["limits"]["memory"] == spec["resources"]["requests"]["memory"]
    assert spec["persistence"]["storage"]


def test_nodes_spread_over_kubernetes_nodes_and_drain_one_at_a_time(resources, cluster):
    name = cluster["metadata"]["name"]
    # The operator labels its pods app.kubernetes.io/name=<RabbitmqCluster name>
    pods = {"app.kubernetes.io/name": name}
    anti = cluster["spec"]["affinity"]["podAntiAffinity"]
    required = anti["requiredDuringSchedulingIgnoredDuringExecution"]
    assert [(t["labelSelector"]["matchLabels"], t["topologyKey"]) for t in required] == [
        (pods, "kubernetes.io/hostname")
    ]
    (budget,) = [r for r in resources if r["kind"] == "PodDisruptionBudget"]
    assert budget["spec"]["selector"]["matchLabels"] == pods
    assert budget["spec"]["maxUnavailable"] == 1


def test_the_base_does_not_include_it(cluster):
    # Given the base kustomization (what `kubectl apply -k deploy/k8s` applies)
    base = yaml.safe_load((ROOT / "deploy/k8s/kustomization.yaml").read_text())
    # Then the RabbitmqCluster is not in it (it needs the operator's CRD installed first)
    assert not any("rabbitmq" in entry for entry in base["resources"])
    assert not any(r["kind"] == "RabbitmqCluster" for r in kustomize_build())
    # And it lands in the namespace the base creates
    namespace = yaml.safe_load((ROOT / "deploy/k8s/namespace.yaml").read_text())["metadata"]["name"]
    assert cluster["metadata"]["namespace"] == namespace


def test_scaling_md_gives_the_services_single_address_for_broker_url(cluster):
    # The operator's Service is named after the cluster and spreads connections over the
    # nodes: BROKER_URL (and KEDA, which reads the same key) need that one address.
    name, namespace = cluster["metadata"]["name"], cluster["metadata"]["namespace"]
    service = f"{name}.{namespace}.svc:5672"
    text = SCALING.read_text()
    assert f"@{service}/" in text
    assert "kubectl apply -k deploy/k8s/rabbitmq" in text
    assert "CONVEYOR_QUEUE_TYPE=quorum" in text
    assert "make test-cluster" in text  # the figures come from the cluster test
