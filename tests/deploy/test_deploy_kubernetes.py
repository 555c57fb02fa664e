"""The kustomize overlays rendered and checked offline: core resources against the Kubernetes
schemas, custom resources (KEDA, Prometheus Operator) field by field, and everything against the
settings the code reads."""

from __future__ import annotations

import os
from pathlib import Path

import kubernetes_validate
import pytest

from shopstream.services import service_spec
from support.deploy import (
    IMAGES,
    K8S,
    OVERLAYS,
    SERVICE_SETTINGS,
    deploy_gaps,
    effective_settings,
    env_problems,
    image_dockerfile,
    kustomize_build,
    kustomize_command,
)

pytestmark = pytest.mark.deploy

KUBERNETES_VERSIONS = ("1.30.0", "1.34.0")
CUSTOM_GROUPS = ("keda.sh", "monitoring.coreos.com")
# KEDA's names for the SASL mechanisms of KafkaSettings.sasl_mechanism.
KEDA_SASL = {"PLAIN": "plaintext", "SCRAM-SHA-256": "scram_sha256", "SCRAM-SHA-512": "scram_sha512"}
# Where each service's input topics live in its settings, in the order of its KEDA triggers
# (one trigger per topic its consumer group reads).
# Where each service's model settings (device, threads) live, when not under `model`.
MODEL_SETTINGS = {"recommender": lambda settings: settings.embedder}
# Services the gpu overlay leaves on CPU nodes (no model on their request path).
CPU_ONLY = frozenset({"recommender"})


def render_with_component(tmp_path: Path, overlay: str, component: str):
    base = Path(os.path.relpath(K8S, tmp_path))
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources: [{base / 'overlays' / overlay}]\n"
        f"components: [{base / 'components' / component}]\n"
    )
    return kustomize_build(tmp_path, "--load-restrictor", "LoadRestrictionsNone")


@pytest.fixture(scope="module", params=[*OVERLAYS, "cpu+kafka-sasl-tls"])
def rendered(request, tmp_path_factory):
    if kustomize_command() is None:
        pytest.fail("no kustomize: scripts/bootstrap.sh installs a pinned one")
    overlay, _, component = request.param.partition("+")
    if component:
        docs = render_with_component(tmp_path_factory.mktemp("k8s"), overlay, component)
    else:
        docs = kustomize_build(K8S / "overlays" / overlay)
    return request.param, docs


def of_kind(docs, kind):
    return [doc for doc in docs if doc["kind"] == kind]


def named(docs, kind, name):
    """The one resource of `kind` called `name`, ignoring a generated ConfigMap's hash suffix."""
    (doc,) = [
        doc
        for doc in of_kind(docs, kind)
        if name in (doc["metadata"]["name"], doc["metadata"]["name"].rsplit("-", 1)[0])
    ]
    return doc


def workloads(docs):
    """(workload, container) for every Deployment and Job."""
    for doc in docs:
        if doc["kind"] in ("Deployment", "Job"):
            for container in doc["spec"]["template"]["spec"]["containers"]:
                yield doc, container


def container_dockerfile(container):
    return image_dockerfile(container["image"].rsplit(":", 1)[0])


def container_env(docs, container) -> dict[str, str | None]:
    """The environment a container starts with: image ENV, envFrom, then env (Secrets -> None)."""
    dockerfile = container_dockerfile(container)
    command = container.get("command") or dockerfile.entrypoint
    env: dict[str, str | None] = dict(dockerfile.env) if command == dockerfile.entrypoint else {}
    for source in container.get("envFrom", []):
        env.update(named(docs, "ConfigMap", source["configMapRef"]["name"])["data"])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        elif "configMapKeyRef" in item["valueFrom"]:
            ref = item["valueFrom"]["configMapKeyRef"]
            env[item["name"]] = named(docs, "ConfigMap", ref["name"])["data"][ref["key"]]
        else:
            env[item["name"]] = None
    return env


def command_of(container):
    return container.get("command") or container_dockerfile(container).entrypoint


def service_deployments(docs):
    for doc, container in workloads(docs):
        if doc["kind"] == "Deployment":
            yield doc, container, doc["metadata"]["name"]


def test_core_resources_validate_against_the_kubernetes_schemas(rendered):
    _, docs = rendered
    kinds = set()
    for doc in docs:
        if doc["apiVersion"].split("/")[0] in CUSTOM_GROUPS:
            continue
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)
        kinds.add(doc["kind"])
    assert {"Namespace", "Deployment", "Service", "ServiceAccount", "ConfigMap", "Job"} <= kinds
    assert "PodDisruptionBudget" in kinds


def test_every_service_is_deployed(rendered):
    _, docs = rendered
    deployed = {name for _, _, name in service_deployments(docs)}
    assert set(IMAGES.values()) <= deployed
    for name in deployed:
        assert name in SERVICE_SETTINGS
        for kind in ("Service", "ServiceAccount", "PodDisruptionBudget", "ScaledObject"):
            assert named(docs, kind, name)
        assert named(docs, "PodMonitor", name)


def test_env_vars_are_known_to_the_settings_and_required_ones_are_set(rendered):
    _, docs = rendered
    for doc, container in workloads(docs):
        problems = env_problems(container_env(docs, container), command_of(container))
        assert problems == [], f"{doc['kind']} {doc['metadata']['name']}: {problems}"


def test_pods_run_non_root_on_a_read_only_root_filesystem_with_bounded_resources(rendered):
    _, docs = rendered
    for doc, container in workloads(docs):
        pod = doc["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][bound])
        # HOME and the libraries' caches live under /tmp, which must be writable.
        assert container_dockerfile(container).env["HOME"].startswith("/tmp")
        mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
        volumes = {volume["name"]: volume for volume in pod["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]]
        tag = container["image"].rsplit(":", 1)[1]
        assert tag
        assert tag != "latest"


def test_services_probe_their_health_endpoints_on_the_configured_port(rendered):
    _, docs = rendered
    for doc, container, name in service_deployments(docs):
        settings = effective_settings(container_env(docs, container), command_of(container))
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        assert ports["http"] == settings.http_port
        assert settings.http_host == "0.0.0.0"
        assert container["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
        assert "replicas" not in doc["spec"], "KEDA owns the replica count"
        grace = doc["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace * 1000 <= settings.batch.max_poll_interval_ms
        service = named(docs, "Service", name)
        assert service["spec"]["selector"] == doc["spec"]["selector"]["matchLabels"]


def test_disruption_budgets_and_monitors_select_the_service_pods(rendered):
    _, docs = rendered
    for doc, container, name in service_deployments(docs):
        labels = doc["spec"]["template"]["metadata"]["labels"]
        budget = named(docs, "PodDisruptionBudget", name)["spec"]
        assert budget["selector"]["matchLabels"].items() <= labels.items()
        assert "maxUnavailable" in budget
        monitor = named(docs, "PodMonitor", name)
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ports = {port["name"] for port in container["ports"]}
        (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
        assert endpoint["port"] in ports
        assert endpoint["path"] == "/metrics"


def test_scaled_objects_follow_the_service_settings_and_the_topic_layout(rendered):
    _, docs = rendered
    kafka = named(docs, "ConfigMap", "shopstream-kafka")["data"]
    job_containers = named(docs, "Job", "shopstream-topics")["spec"]["template"]["spec"][
        "containers"
    ]
    # The registry is the specs installed in an image, so the Job runs every service's image.
    assert sorted(job["image"] for job in job_containers) == sorted(
        container["image"] for _, container, _ in service_deployments(docs)
    )
    settings_of_jobs = [
        effective_settings(container_env(docs, job), command_of(job)) for job in job_containers
    ]
    partitions = {settings.topics.partitions for settings in settings_of_jobs}
    (topics_partitions,) = partitions
    if kafka["security-protocol"].endswith("SSL"):
        # Every container of the Job trusts the cluster's CA, not only the first one.
        assert all(settings.kafka.ssl_cafile for settings in settings_of_jobs)
    for doc, container, name in service_deployments(docs):
        settings = effective_settings(container_env(docs, container), command_of(container))
        scaled = named(docs, "ScaledObject", name)
        assert scaled["apiVersion"] == "keda.sh/v1alpha1"
        spec = scaled["spec"]
        assert spec["scaleTargetRef"]["name"] == doc["metadata"]["name"]
        assert spec["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
        assert spec["maxReplicaCount"] <= topics_partitions
        triggers = spec["triggers"]
        # One KEDA trigger per topic the service consumes in its group, as its spec says.
        assert [trigger["metadata"].get("topic") for trigger in triggers] == list(
            service_spec(name).topic_use(settings).consumes
        )
        for trigger in triggers:
            assert trigger["type"] == "kafka"
            metadata = trigger["metadata"]
            assert all(isinstance(value, str) for value in metadata.values()), "CRD: strings"
            assert metadata["bootstrapServers"] == kafka["bootstrap-servers"]
            assert metadata["consumerGroup"] == (settings.group_id or f"shopstream-{name}")
            assert int(metadata["lagThreshold"]) > 0
            assert metadata["offsetResetPolicy"] == settings.batch.auto_offset_reset
            assert metadata["allowIdleConsumers"] == "false"
            assert metadata["scaleToZeroOnInvalidOffset"] == "false"
            assert tuple(int(part) for part in metadata["version"].split(".")) >= (2, 8, 0)
            if kafka["security-protocol"].startswith("SASL"):
                assert metadata["sasl"] == KEDA_SASL[kafka["sasl-mechanism"]]
                auth = named(docs, "TriggerAuthentication", trigger["authenticationRef"]["name"])
                parameters = {ref["parameter"] for ref in auth["spec"]["secretTargetRef"]}
                assert {"username", "password"} <= parameters
            if kafka["security-protocol"].endswith("SSL"):
                assert metadata["tls"] == "enable"
                assert settings.kafka.ssl_cafile is not None


def test_custom_resources_have_their_required_fields(rendered):
    _, docs = rendered
    required = {
        "ScaledObject": ("scaleTargetRef", "triggers"),
        "TriggerAuthentication": (),
        "PodMonitor": ("selector", "podMetricsEndpoints"),
    }
    for doc in docs:
        if doc["apiVersion"].split("/")[0] not in CUSTOM_GROUPS:
            continue
        assert doc["kind"] in required
        assert doc["metadata"]["name"]
        assert doc["metadata"]["namespace"] == "shopstream"
        for field in required[doc["kind"]]:
            assert doc["spec"][field], f"{doc['kind']} {doc['metadata']['name']}: {field}"
        for ref in doc["spec"].get("secretTargetRef", []):
            assert {"parameter", "name", "key"} <= set(ref)


def test_overlays_place_pods_on_cpu_or_gpu_nodes(rendered):
    variant, docs = rendered
    for _, container, name in service_deployments(docs):
        env = container_env(docs, container)
        settings = effective_settings(env, command_of(container))
        model = MODEL_SETTINGS.get(name, lambda settings: settings.model)(settings)
        doc = named(docs, "Deployment", name)
        pod = doc["spec"]["template"]["spec"]
        limits = container["resources"]["limits"]
        if variant.startswith("gpu") and name not in CPU_ONLY:
            assert limits["nvidia.com/gpu"] == 1
            assert container["image"].endswith("-cuda")
            assert pod["nodeSelector"]["nvidia.com/gpu.present"] == "true"
            assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
            assert model.device == "cuda"
        else:
            assert "nvidia.com/gpu" not in limits
            assert container["image"].endswith("-cpu")
            assert model.device == "cpu"
            # torch's pool: the model's threads setting, else OMP_NUM_THREADS.
            threads = getattr(model, "threads", None) or env.get("OMP_NUM_THREADS")
            assert threads is not None
            assert int(threads) <= float(limits["cpu"])


def test_every_installed_service_that_ships_an_image_has_its_deploy_files() -> None:
    assert deploy_gaps() == []
