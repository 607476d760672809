"""deploy/k8s built with kustomize and validated offline against Kubernetes' schemas.

Built by the kustomize that kubectl embeds (`kubectl kustomize`), or a standalone
`kustomize`; validated by kubernetes-validate (PyPI), which ships the JSON schemas of
every Kubernetes release, strictly (unknown fields are errors). KEDA's custom
resources have no bundled schema: they are checked field by field below.
"""

import os
import shutil
import subprocess
import sys

import kubernetes_validate
import pytest
import yaml

from tests.deploy.compose import ROOT

KUBERNETES_VERSION = "1.33.0"
KEDA_KINDS = {"ScaledObject", "TriggerAuthentication"}


def kustomize_build(path=ROOT / "deploy/k8s"):
    """The resources a kustomization folder renders (the base unless told another)."""
    if shutil.which("kubectl"):
        command = ["kubectl", "kustomize", str(path)]
    elif shutil.which("kustomize"):
        command = ["kustomize", "build", str(path)]
    elif os.environ.get("CI"):
        pytest.fail("CI needs kubectl (it embeds kustomize) or kustomize on PATH")
    else:
        pytest.skip("neither kubectl nor kustomize is installed")
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def resources():
    return kustomize_build()


def by_kind(resources, kind):
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


def test_every_core_resource_validates_against_the_kubernetes_schema(resources):
    errors = []
    for resource in resources:
        if resource["kind"] in KEDA_KINDS:
            continue
        try:
            kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{resource['kind']}/{resource['metadata']['name']}: {exc.message} at {list(exc.path)}")
    assert errors == []


def test_the_validator_rejects_a_misspelt_field(resources):
    deployment = next(r for r in resources if r["kind"] == "Deployment")
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_deployments_have_probes_resources_and_run_as_non_root(resources):
    for name, deployment in by_kind(resources, "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        for container in pod["containers"]:
            assert container.get("livenessProbe") and container.get("startupProbe"), name
            assert {"cpu", "memory"} <= container["resources"]["requests"].keys(), name
            assert "memory" in container["resources"]["limits"], name
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, name
    assert (
        by_kind(resources, "Deployment")["conveyor-web"]["spec"]["template"]["spec"]["containers"][0]["readinessProbe"][
            "httpGet"
        ]["path"]
        == "/readyz"
    )


def test_worker_grace_period_covers_its_shutdown_timeout(resources):
    config = next(r for r in resources if r["kind"] == "ConfigMap")["data"]
    worker = by_kind(resources, "Deployment")["conveyor-worker"]
    shutdown = int(config["CONVEYOR_WORKER_SHUTDOWN_TIMEOUT_SECONDS"])
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= shutdown + 10
    # KEDA owns the replica count; a fixed one would fight it on every apply.
    assert "replicas" not in worker["spec"]


def test_every_app_deployment_has_a_disruption_budget(resources):
    budgets = {
        tuple(p["spec"]["selector"]["matchLabels"].items()) for p in by_kind(resources, "PodDisruptionBudget").values()
    }
    for deployment in by_kind(resources, "Deployment").values():
        assert tuple(deployment["spec"]["selector"]["matchLabels"].items()) in budgets, deployment["metadata"]["name"]


def test_keda_scales_the_worker_on_every_queue(resources):
    scaled = by_kind(resources, "ScaledObject")["conveyor-worker"]
    auth = by_kind(resources, "TriggerAuthentication")
    config = next(r for r in resources if r["kind"] == "ConfigMap")["data"]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"]["scaleTargetRef"]["name"] in by_kind(resources, "Deployment")
    queues = set()
    for trigger in scaled["spec"]["triggers"]:
        assert trigger["type"] == "rabbitmq" and trigger["metadata"]["mode"] == "QueueLength"
        assert int(trigger["metadata"]["value"]) > 0
        assert trigger["authenticationRef"]["name"] in auth
        queues.add(trigger["metadata"]["queueName"])
    assert queues == set(config["CONVEYOR_QUEUES"].split(","))
    assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]
    ref = auth["conveyor-rabbitmq"]["spec"]["secretTargetRef"][0]
    assert (ref["parameter"], ref["key"]) == ("host", "BROKER_URL")


def test_the_config_map_sets_every_setting_and_passes_check_deploy(resources, tmp_path):
    config = next(r for r in resources if r["kind"] == "ConfigMap")["data"]
    from tests.deploy.test_environment_coverage import SHARED_CODE, reads_in

    # RABBITMQ_MANAGEMENT_URL carries credentials: an optional key of the same Secret.
    secrets = {"DJANGO_SECRET_KEY", "DATABASE_URL", "BROKER_URL", "RABBITMQ_MANAGEMENT_URL"}
    wanted = reads_in(SHARED_CODE) - {"DJANGO_SETTINGS_MODULE"}
    assert sorted(wanted - secrets - config.keys()) == []
    env = {
        **config,
        "DJANGO_SECRET_KEY": "k" * 20 + "8s-secret-key-of-fifty-characters-xyz",
        "DATABASE_URL": "postgres://u:p@db:5432/c",
        "BROKER_URL": "amqp://u:p@mq:5672/c",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
