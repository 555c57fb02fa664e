"""docker-compose.yml (alone and with the GPU override), resolved the way Docker Compose resolves
it (compose-spec schema, interpolation, override merging: tools/composecheck), then checked:
env vars against the settings classes, start order, health checks, Kafka in KRaft mode,
Prometheus and Grafana wiring."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from support.deploy import (
    IMAGES,
    ROOT,
    SERVICE_SETTINGS,
    compose_project,
    env_problems,
    image_dockerfile,
    load_yaml,
)

pytestmark = pytest.mark.deploy

VARIANTS = {
    "cpu": ("docker-compose.yml",),
    "gpu": ("docker-compose.yml", "docker-compose.gpu.yml"),
    "podman": ("docker-compose.yml", "docker-compose.podman.yml"),
}


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def project(request):
    return compose_project(*VARIANTS[request.param])


def environment(service) -> dict[str, str | None]:
    return dict(service.get("environment") or {})


def shopstream_containers(project):
    """(name, service, image Dockerfile, command) for every container of a shopstream image."""
    for name, service in project["services"].items():
        image = service["image"].rsplit(":", 1)[0]
        if image not in IMAGES:
            continue
        dockerfile = image_dockerfile(image)
        command = service.get("entrypoint") or dockerfile.entrypoint
        yield name, service, dockerfile, command


def runs_a_service(dockerfile, command) -> bool:
    return command == dockerfile.entrypoint


def test_every_service_image_is_in_compose(project):
    built = {
        service["image"].rsplit(":", 1)[0]: service["build"]
        for service in project["services"].values()
        if "build" in service
    }
    for image, service in IMAGES.items():
        assert built[image]["dockerfile"] == "Dockerfile"
        assert built[image]["args"]["SERVICE"] == service
        assert service in project["services"]
        assert service in SERVICE_SETTINGS


def test_env_vars_are_known_to_the_settings_and_required_ones_are_set(project):
    checked = 0
    for name, service, dockerfile, command in shopstream_containers(project):
        image_env = dockerfile.env if runs_a_service(dockerfile, command) else {}
        problems = env_problems({**image_env, **environment(service)}, command)
        assert problems == [], f"service {name}: {problems}"
        checked += 1
    assert checked >= 2  # the topic initialisation and at least one service


def test_the_checker_rejects_unknown_and_missing_variables():
    command = ["python", "-m", "shopstream_sentiment"]
    typo = env_problems(
        {"SENTIMENT_HTTP_HOST": "0.0.0.0", "SENTIMENT_KAFKA__BOOTSTRAP_SERVER": "kafka:9092"},
        command,
    )
    assert any("SENTIMENT_KAFKA__BOOTSTRAP_SERVER:" in problem for problem in typo)
    assert any("SENTIMENT_KAFKA__BOOTSTRAP_SERVERS: required" in problem for problem in typo)
    base = {"SENTIMENT_HTTP_HOST": "0.0.0.0", "SENTIMENT_KAFKA__BOOTSTRAP_SERVERS": "k:9092"}
    wrong_prefix = env_problems({**base, "ECHO_DELAY_MS": "5"}, command)
    assert wrong_prefix == ["ECHO_DELAY_MS: not a setting of SentimentSettings (prefix SENTIMENT_)"]
    bad_value = env_problems({**base, "SENTIMENT_BATCH__MAX_RECORDS": "lots"}, command)
    assert len(bad_value) == 1
    assert "rejects the values" in bad_value[0]
    nested_and_maps = env_problems(
        {
            **base,
            "SENTIMENT_MODEL__LABEL_MAP__pos": "positive",
            "SENTIMENT_TOPICS__REVIEWS": "acme.reviews",
            "SENTIMENT_KAFKA__SASL_PASSWORD": None,
        },
        command,
    )
    assert nested_and_maps == []


def test_the_resolver_rejects_what_docker_compose_rejects(tmp_path):
    broken = tmp_path / "compose.yml"
    broken.write_text("services:\n  a:\n    image: x\n    helthcheck: {}\n")
    with pytest.raises(RuntimeError, match="helthcheck"):
        compose_project(str(broken))
    dangling = tmp_path / "dangling.yml"
    dangling.write_text(
        "services:\n  a:\n    image: x\n    depends_on:\n"
        "      b:\n        condition: service_healthy\n"
    )
    with pytest.raises(RuntimeError, match="undefined service"):
        compose_project(str(dangling))


def test_kafka_is_apache_kafka_4_0_in_kraft_mode(project):
    kafka = project["services"]["kafka"]
    assert re.fullmatch(r"apache/kafka:4\.0\.\d+", kafka["image"])
    env = environment(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert not any("ZOOKEEPER" in name for name in env)
    listeners = dict(item.split("://") for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    internal = listeners[env["KAFKA_INTER_BROKER_LISTENER_NAME"]]
    for _, service, _, _ in shopstream_containers(project):
        servers = [v for k, v in environment(service).items() if k.endswith("BOOTSTRAP_SERVERS")]
        assert servers == [internal]
    assert kafka["healthcheck"]["test"]


def test_start_order_waits_for_health_and_topics(project):
    services = project["services"]
    for name, service in services.items():
        for dependency, condition in (service.get("depends_on") or {}).items():
            if condition["condition"] == "service_healthy":
                check = services[dependency].get("healthcheck") or {}
                image = services[dependency]["image"].rsplit(":", 1)[0]
                assert check.get("test") or image in IMAGES, f"{name} waits on {dependency}"
                assert not check.get("disable")
    for _, service, dockerfile, command in shopstream_containers(project):
        if not runs_a_service(dockerfile, command):
            continue
        depends = service["depends_on"]
        assert depends["kafka"]["condition"] == "service_healthy"
        (job,) = [name for name in depends if name.endswith("-topics")]
        assert depends[job]["condition"] == "service_completed_successfully"
        # The registry is the specs installed in an image: a service's own image creates its
        # topics (one image's job cannot create another service's).
        assert services[job]["image"] == service["image"]
        assert any("/health/ready" in part for part in service["healthcheck"]["test"])
        assert service["read_only"] is True
        assert "/tmp" in service["tmpfs"]


def test_topic_initialisation_is_one_shot_per_service_image(project):
    services = project["services"]
    jobs = {name: service for name, service in services.items() if name.endswith("-topics")}
    assert set(jobs) == {f"{name.rsplit('/', 1)[1]}-topics" for name in IMAGES}
    for job in jobs.values():
        assert job["entrypoint"] == ["shopstream", "topics", "create"]
        assert job["restart"] == "no"
        assert job["healthcheck"] == {"disable": True}
        assert job["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_gpu_override_reserves_a_gpu_and_uses_the_cuda_image():
    sentiment = compose_project(*VARIANTS["gpu"])["services"]["sentiment"]
    assert sentiment["build"]["args"]["VARIANT"] == "cuda"
    assert sentiment["image"].endswith("-cuda")
    (device,) = sentiment["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia"
    assert "gpu" in device["capabilities"]
    assert environment(sentiment)["SENTIMENT_MODEL__DEVICE"] == "cuda"


def bind_mounts(service) -> dict[str, str]:
    """target -> source of a service's bind mounts, sources checked to exist."""
    mounts = {}
    for volume in service.get("volumes", []):
        assert volume["type"] == "bind"
        assert (ROOT / volume["source"]).exists(), volume["source"]
        mounts[volume["target"]] = volume["source"]
    return mounts


def test_prometheus_scrapes_every_service(project):
    mounts = bind_mounts(project["services"]["prometheus"])
    config_file = ROOT / mounts["/etc/prometheus/prometheus.yml"]
    assert config_file == ROOT / "deploy/prometheus/prometheus.yml"
    config = load_yaml(config_file)
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    for name, service, dockerfile, command in shopstream_containers(project):
        if not runs_a_service(dockerfile, command):
            continue
        env = {**dockerfile.env, **environment(service)}
        assert f"{name}:{env.get(f'{name.upper()}_HTTP_PORT', '8000')}" in targets
    assert "kafka-exporter:9308" in targets
    assert "kafka-exporter" in project["services"]


def promtool(*arguments: str) -> None:
    """Run promtool and fail with its output unless it succeeds."""
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool missing: scripts/bootstrap.sh installs the prometheus package")
    completed = subprocess.run(
        [binary, *arguments], capture_output=True, text=True, check=False, timeout=60
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_prometheus_config_is_valid():
    promtool("check", "config", str(ROOT / "deploy/prometheus/prometheus.yml"))


def test_alert_rules_pass_their_promtool_tests_and_name_real_metrics(project):
    rules = ROOT / "deploy/prometheus"
    promtool("test", "rules", str(rules / "alerts.test.yml"))
    from prometheus_client import CollectorRegistry  # noqa: PLC0415 - only this test

    from shopstream_responder.metrics import ResponderMetrics  # noqa: PLC0415

    registry = CollectorRegistry()
    ResponderMetrics(registry)
    exported = {
        family.name + ("_total" if family.type == "counter" else "")
        for family in registry.collect()
    }
    expressions = [
        rule["expr"]
        for group in load_yaml(rules / "alerts.yml")["groups"]
        for rule in group["rules"]
    ]
    named = {name for expr in expressions for name in re.findall(r"shopstream_\w+", expr)}
    assert named, "the rules name shopstream metrics"
    assert named <= exported, named - exported
    prometheus = bind_mounts(project["services"]["prometheus"])
    assert ROOT / prometheus["/etc/prometheus/alerts.yml"] == rules / "alerts.yml"


def test_grafana_is_provisioned_with_the_datasource_and_dashboard(project):
    mounts = bind_mounts(project["services"]["grafana"])
    provisioning = ROOT / mounts["/etc/grafana/provisioning"]
    (datasource,) = load_yaml(provisioning / "datasources/prometheus.yml")["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    (provider,) = load_yaml(provisioning / "dashboards/shopstream.yml")["providers"]
    dashboards_dir = provider["options"]["path"]
    assert (ROOT / mounts[dashboards_dir] / "shopstream.json").exists()
